import RelayCore

/// How a rule builds its event from a message's fields: each part a `FieldTemplate`.
public struct EventTemplate: Sendable, Equatable {
    public var routingKey: FieldTemplate?
    public var action: FieldTemplate?
    public var severity: FieldTemplate?
    public var summary: FieldTemplate?
    public var source: FieldTemplate?
    public var component: FieldTemplate?
    public var group: FieldTemplate?
    public var eventClass: FieldTemplate?
    public var dedupKey: FieldTemplate?

    public init() {}

    static var keys: [String: WritableKeyPath<EventTemplate, FieldTemplate?>] {
        [
            "routing_key": \.routingKey, "action": \.action, "severity": \.severity, "summary": \.summary, "source": \.source,
            "component": \.component, "group": \.group, "class": \.eventClass, "dedup_key": \.dedupKey,
        ]
    }

    /// Reads `{routing_key: …, summary: …}`; `where` names it in errors.
    init(_ value: JSONValue, where place: String) throws(ConfigurationError) {
        guard case .object(let members) = value else { throw ConfigurationError("\(place) must be a mapping of event fields to templates") }
        for (name, member) in members.sorted(by: { $0.key < $1.key }) {
            guard let path = Self.keys[name] else {
                throw ConfigurationError("\(place) has '\(name)'; an event sets \(Self.keys.keys.sorted().joined(separator: ", "))")
            }
            guard let text = GatewayRules.scalarText(member) else { throw ConfigurationError("\(place).\(name) must be text") }
            self[keyPath: path] = try FieldTemplate(text, setting: "\(place).\(name)")
        }
        if let action = action, action.fieldNames.isEmpty, !Self.actions.contains(action.description) {
            throw ConfigurationError("\(place).action must be trigger, acknowledge or resolve (or a {field} holding one)")
        }
        if let severity = severity, severity.fieldNames.isEmpty, Self.severity(severity.description) == nil {
            throw ConfigurationError("\(place).severity must be critical, error, warning or info (or a {field} holding one)")
        }
    }

    static let actions: Set<String> = ["trigger", "acknowledge", "resolve"]

    /// PagerDuty's severity for what a sender wrote, which is often syslog's word for it.
    static func severity(_ text: String) -> String? {
        switch text.lowercased() {
        case "critical", "crit", "emerg", "emergency", "alert", "fatal", "panic": "critical"
        case "error", "err": "error"
        case "warning", "warn": "warning"
        case "info", "informational", "notice", "debug": "info"
        default: nil
        }
    }

    /// This template with the blanks filled from `defaults`.
    func filled(from defaults: EventTemplate) -> EventTemplate {
        var filled = self
        for path in Self.keys.values where filled[keyPath: path] == nil { filled[keyPath: path] = defaults[keyPath: path] }
        return filled
    }
}
