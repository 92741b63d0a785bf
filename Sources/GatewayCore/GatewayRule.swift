import RelayCore

/// One rule: conditions on a message's fields, and the event a match becomes. Every condition
/// must hold. `match` compares a field with shell patterns (`plc-*`; a list means any of them);
/// `regex` searches a field with a regular expression whose named captures
/// (`(?<zone>\w+)`) become fields for the event's templates.
public struct GatewayRule: Sendable, Equatable {
    public var name: String
    public var patterns: [(field: String, anyOf: [String])]
    public var expressions: [(field: String, pattern: String)]
    public var event: EventTemplate

    public static let maxPatternsPerField = 64
    public static let maxExpressionCharacters = 1_024

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.name == rhs.name && lhs.event == rhs.event && lhs.patterns.elementsEqual(rhs.patterns) { $0 == $1 }
            && lhs.expressions.elementsEqual(rhs.expressions) { $0 == $1 }
    }

    static let keys: Set<String> = ["name", "match", "regex", "event"]

    init(_ value: JSONValue, where place: String) throws(ConfigurationError) {
        guard case .object(let members) = value else { throw ConfigurationError("\(place) must be a mapping") }
        if let unknown = members.keys.sorted().first(where: { !Self.keys.contains($0) }) {
            throw ConfigurationError("\(place) has '\(unknown)'; a rule has \(Self.keys.sorted().joined(separator: ", "))")
        }
        guard let name = members["name"].flatMap(GatewayRules.scalarText), !name.isEmpty, name.count <= 100 else {
            throw ConfigurationError("\(place) needs a name of 1 to 100 characters")
        }
        let here = "\(place) (\(name))"
        self.name = name
        patterns = []
        if let match = members["match"] {
            guard case .object(let fields) = match else { throw ConfigurationError("\(here).match must map fields to patterns") }
            for (field, value) in fields.sorted(by: { $0.key < $1.key }) {
                let texts: [String?] =
                    if case .array(let items) = value { items.map(GatewayRules.scalarText) } else { [GatewayRules.scalarText(value)] }
                let anyOf = texts.compactMap { $0 }
                guard !anyOf.isEmpty, anyOf.count == texts.count, anyOf.count <= Self.maxPatternsPerField,
                    anyOf.allSatisfy({ !$0.isEmpty && $0.count <= SourcePattern.maxCharacters })
                else {
                    throw ConfigurationError(
                        "\(here).match.\(field) must be a pattern, or a list of up to \(Self.maxPatternsPerField), each 1 to \(SourcePattern.maxCharacters) characters"
                    )
                }
                patterns.append((field, anyOf))
            }
        }
        expressions = []
        if let regex = members["regex"] {
            guard case .object(let fields) = regex else { throw ConfigurationError("\(here).regex must map fields to expressions") }
            for (field, value) in fields.sorted(by: { $0.key < $1.key }) {
                guard let pattern = GatewayRules.scalarText(value), !pattern.isEmpty, pattern.count <= Self.maxExpressionCharacters else {
                    throw ConfigurationError(
                        "\(here).regex.\(field) must be an expression of 1 to \(Self.maxExpressionCharacters) characters")
                }
                do {
                    _ = try Regex(pattern)
                } catch {
                    throw ConfigurationError("\(here).regex.\(field) is not a valid expression: \(error)")
                }
                expressions.append((field, pattern))
            }
        }
        guard let event = members["event"] else { throw ConfigurationError("\(here) needs an event") }
        self.event = try EventTemplate(event, where: "\(here).event")
    }
}
