import RelayCore

/// The rules of every gateway, read from the `gateway_rules_file`:
///
/// ```yaml
/// syslog:
///   rules:
///     - name: plc-over-temperature
///       match: {app: TEMPCTL, hostname: "plc-*"}
///       regex: {message: 'zone (?<zone>\S+) at (?<celsius>[0-9.]+) C'}
///       event: {routing_key: R0…, severity: critical, dedup_key: "{hostname}/{app}/{zone}"}
///   unmatched: drop          # or an event, which every message no rule took becomes
/// snmp_traps: {communities: [public], rules: […], unmatched: …}
/// lines: {rules: […], unmatched: …}
/// ```
///
/// The first rule that matches wins. A section that is absent drops everything (its listener
/// still counts what it drops).
public struct GatewayRules: Sendable, Equatable {
    public struct Section: Sendable, Equatable {
        public var rules: [GatewayRule] = []
        /// What a message no rule matched becomes; nil drops it.
        public var unmatched: EventTemplate?
        /// SNMP only: the communities a trap must carry. Empty accepts none.
        public var communities: [String] = []

        public init() {}
    }

    public var sections: [Gateway: Section] = [:]
    public static let maxRulesPerSection = 1_000

    public init() {}

    public func section(_ gateway: Gateway) -> Section { sections[gateway] ?? Section() }

    public init(_ document: JSONValue, file: String) throws(ConfigurationError) {
        guard case .object(let members) = document else { throw ConfigurationError("\(file) must be a mapping of gateways to their rules") }
        for (name, value) in members.sorted(by: { $0.key < $1.key }) {
            guard let gateway = Gateway(rawValue: name) else {
                throw ConfigurationError(
                    "\(file) has '\(name)'; the gateways are \(Gateway.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            sections[gateway] = try Self.section(value, gateway: gateway, place: "\(file): \(name)")
        }
    }

    private static func section(_ value: JSONValue, gateway: Gateway, place: String) throws(ConfigurationError) -> Section {
        guard case .object(let members) = value else { throw ConfigurationError("\(place) must be a mapping") }
        let keys: Set<String> = gateway == .snmpTraps ? ["rules", "unmatched", "communities"] : ["rules", "unmatched"]
        if let unknown = members.keys.sorted().first(where: { !keys.contains($0) }) {
            throw ConfigurationError("\(place) has '\(unknown)'; it takes \(keys.sorted().joined(separator: ", "))")
        }
        var section = Section()
        if let rules = members["rules"] {
            guard case .array(let items) = rules, items.count <= maxRulesPerSection else {
                throw ConfigurationError("\(place).rules must be a list of up to \(maxRulesPerSection) rules")
            }
            for (index, item) in items.enumerated() {
                let rule = try GatewayRule(item, where: "\(place).rules[\(index)]")
                guard !section.rules.contains(where: { $0.name == rule.name }) else {
                    throw ConfigurationError("\(place) has two rules named '\(rule.name)'")
                }
                section.rules.append(rule)
            }
        }
        switch members["unmatched"] {
        case nil, .string("drop"): section.unmatched = nil
        case .some(let template) where template.isObject: section.unmatched = try EventTemplate(template, where: "\(place).unmatched")
        case .some: throw ConfigurationError("\(place).unmatched must be drop or an event")
        }
        if let communities = members["communities"] {
            let items: [JSONValue] = if case .array(let items) = communities { items } else { [communities] }
            section.communities = try items.map { item throws(ConfigurationError) -> String in
                guard let text = scalarText(item), !text.isEmpty, text.utf8.count <= 255 else {
                    throw ConfigurationError("\(place).communities must be a list of 1 to 255 byte strings")
                }
                return text
            }
        }
        return section
    }

    /// A YAML scalar as text: `162` and `true` are what the person wrote.
    static func scalarText(_ value: JSONValue) -> String? {
        switch value {
        case .string(let text): text
        case .integer(let number): String(number)
        case .number(let number): String(number)
        case .bool(let flag): String(flag)
        default: nil
        }
    }
}

extension JSONValue {
    fileprivate var isObject: Bool { if case .object = self { true } else { false } }
}
