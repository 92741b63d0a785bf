import RelayCore

/// One gateway's rules, ready to apply: regular expressions compiled once. Not `Sendable`
/// (Swift's `Regex` is not): each listener task builds its own from the shared `GatewayRules`.
public struct RuleMatcher {
    struct CompiledRule {
        let rule: GatewayRule
        let expressions: [(field: String, regex: Regex<AnyRegexOutput>)]
        let event: EventTemplate
    }

    public let gateway: Gateway
    private let rules: [CompiledRule]
    private let unmatched: EventTemplate?

    /// The longest summary PagerDuty takes; a longer one is cut, not refused.
    static let maxSummaryCharacters = 1_024
    /// Fields copied into `custom_details`, and the longest value copied.
    static let maxDetailFields = 64
    static let maxDetailCharacters = 1_024

    public init(_ rules: GatewayRules, gateway: Gateway) {
        self.gateway = gateway
        let section = rules.section(gateway)
        let defaults = Self.defaults(gateway)
        self.rules = section.rules.map { rule in
            CompiledRule(
                rule: rule,
                expressions: rule.expressions.map { expression in
                    // Checked when the rules were read.
                    (expression.field, try! Regex(expression.pattern))
                }, event: rule.event.filled(from: defaults))
        }
        self.unmatched = section.unmatched?.filled(from: defaults)
    }

    /// What a section leaves unsaid: the summary is the message, the source the host that sent
    /// it, the severity syslog's own (mapped) or a warning.
    static func defaults(_ gateway: Gateway) -> EventTemplate {
        var defaults = EventTemplate()
        func template(_ text: String) -> FieldTemplate { try! FieldTemplate(text, setting: "default") }
        defaults.action = template("trigger")
        switch gateway {
        case .syslog:
            defaults.summary = template("{message|app|hostname}")
            defaults.source = template("{hostname|sender}")
            defaults.component = template("{app}")
            defaults.severity = template("{pagerduty_severity}")
        case .snmpTraps:
            defaults.summary = template("SNMP trap {trap} from {agent}")
            defaults.source = template("{agent}")
            defaults.severity = template("warning")
        case .lines:
            defaults.summary = template("{summary|message|msg}")
            defaults.source = template("{source|host|hostname|sender}")
            defaults.severity = template("{severity|level|pagerduty_severity}")
        }
        return defaults
    }

    /// The verdict for a message with `fields` (which must include `sender`).
    public func map(_ fields: [String: String]) -> GatewayVerdict {
        for compiled in rules where Self.patternsHold(compiled.rule, fields) {
            guard var captured = Self.expressionsHold(compiled.expressions, fields) else { continue }
            captured.merge(fields) { capture, _ in capture }
            return Self.event(compiled.event, fields: captured, rule: compiled.rule.name, gateway: gateway)
        }
        guard let unmatched else { return .unmatched }
        return Self.event(unmatched, fields: fields, rule: "unmatched", gateway: gateway)
    }

    private static func patternsHold(_ rule: GatewayRule, _ fields: [String: String]) -> Bool {
        rule.patterns.allSatisfy { condition in
            guard let value = fields[condition.field] else { return false }
            return condition.anyOf.contains { SourcePattern.matches(pattern: $0, value) }
        }
    }

    /// The named captures of every expression, or nil when one does not match.
    private static func expressionsHold(_ expressions: [(field: String, regex: Regex<AnyRegexOutput>)], _ fields: [String: String])
        -> [String: String]?
    {
        var captures: [String: String] = [:]
        for expression in expressions {
            guard let value = fields[expression.field], let match = try? expression.regex.firstMatch(in: value) else { return nil }
            for element in match.output {
                if let name = element.name, let text = element.substring { captures[name] = String(text) }
            }
        }
        return captures
    }

    static func event(_ template: EventTemplate, fields: [String: String], rule: String, gateway: Gateway) -> GatewayVerdict {
        let action = template.action?.render(fields) ?? "trigger"
        guard EventTemplate.actions.contains(action) else {
            return .unmappable(rule: rule, reason: "action '\(action.prefix(40))' is not trigger, acknowledge or resolve")
        }
        guard let routingKey = template.routingKey?.render(fields, strict: true), !routingKey.isEmpty else {
            return .unmappable(rule: rule, reason: "no routing_key (set one in the rule)")
        }
        var event: [String: JSONValue] = [
            "routing_key": .string(routingKey), "event_action": .string(action), "client": .string("pdrelay \(gateway.rawValue) gateway"),
        ]
        // A dedup_key with a field missing would merge unrelated faults: a trigger then goes
        // without one (PagerDuty opens its own incident), and an acknowledge or resolve, which
        // would find nothing to close, is not sent.
        if let key = template.dedupKey?.render(fields, strict: true), !key.isEmpty {
            event["dedup_key"] = .string(DedupKeyTemplate.bounded(key))
        } else if action != "trigger" {
            let names = template.dedupKey?.fieldNames.joined(separator: ", ") ?? "none set"
            return .unmappable(rule: rule, reason: "a \(action) needs a dedup_key, and its fields (\(names)) are not all in the message")
        }
        if action == "trigger" {
            let severityText = template.severity?.render(fields) ?? ""
            var payload: [String: JSONValue] = [
                "summary": .string(
                    bounded(template.summary?.render(fields) ?? "", Self.maxSummaryCharacters, or: ["\(gateway.rawValue) message"])),
                "source": .string(
                    bounded(template.source?.render(fields) ?? "", 255, or: [fields["sender"] ?? "", "unknown"])
                ),
                "severity": .string(EventTemplate.severity(severityText) ?? "warning"),
            ]
            for (name, part) in [("component", template.component), ("group", template.group), ("class", template.eventClass)] {
                if let text = part.map({ bounded($0.render(fields) ?? "", 255) }), !text.isEmpty { payload[name] = .string(text) }
            }
            var details: [String: JSONValue] = ["gateway": .string(gateway.rawValue), "rule": .string(rule)]
            for (name, value) in fields.sorted(by: { $0.key < $1.key }).prefix(maxDetailFields) {
                details[name] = .string(value.count > maxDetailCharacters ? String(value.prefix(maxDetailCharacters)) : value)
            }
            payload["custom_details"] = .object(details)
            event["payload"] = .object(payload)
        }
        return .event(
            JSONValue.object(event).encoded(), rule: rule, incident: event["dedup_key"]?.stringValue.map { routingKey + "\n" + $0 })
    }

    /// The first of `text` and `fallbacks` that is not blank, trimmed and cut to `limit`: a
    /// summary or source of only spaces is one PagerDuty refuses. Empty when all are blank.
    private static func bounded(_ text: String, _ limit: Int, or fallbacks: [String] = []) -> String {
        for candidate in [text] + fallbacks {
            let trimmed = String(String(candidate.drop(while: \.isWhitespace).reversed()).drop(while: \.isWhitespace).reversed())
            if !trimmed.isEmpty { return trimmed.count > limit ? String(trimmed.prefix(limit)) : trimmed }
        }
        return ""
    }
}
