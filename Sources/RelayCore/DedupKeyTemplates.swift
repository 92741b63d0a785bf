/// Which dedup_key template a keyless trigger gets: its routing key's own, else the `*` entry,
/// else none (the relay assigns a random key, as PagerDuty would). Every node must hold the same
/// table, as with every other setting that shapes what is accepted: the node that takes a
/// request builds the key.
public struct DedupKeyTemplates: Sendable, Equatable {
    /// Bounds the table a config file can ask for.
    public static let maxEntries = 1_000
    /// The entry that applies to every routing key without one of its own.
    public static let anyRoutingKey = "*"
    /// PagerDuty's integration keys have 32 characters; this leaves room for other upstreams'
    /// while bounding what a config file can hold.
    static let maxRoutingKeyCharacters = 64

    private let byRoutingKey: [String: DedupKeyTemplate]

    public init() { byRoutingKey = [:] }

    /// `entries` maps routing keys (or `*`) to template texts.
    public init(_ entries: [String: String]) throws(ConfigurationError) {
        guard entries.count <= Self.maxEntries else {
            throw ConfigurationError("dedup_key_templates has \(entries.count) entries; at most \(Self.maxEntries) are allowed")
        }
        var templates: [String: DedupKeyTemplate] = [:]
        for (routingKey, text) in entries {
            guard !routingKey.isEmpty, routingKey.utf8.count <= Self.maxRoutingKeyCharacters else {
                throw ConfigurationError(
                    "dedup_key_templates: a routing key must have 1 to \(Self.maxRoutingKeyCharacters) characters, or be '*'")
            }
            do {
                templates[routingKey] = try DedupKeyTemplate(text)
            } catch {
                throw ConfigurationError("dedup_key_templates entry for \(RoutingKeyMask.mask(routingKey)): \(error.description)")
            }
        }
        byRoutingKey = templates
    }

    public func template(for routingKey: String) -> DedupKeyTemplate? {
        byRoutingKey[routingKey] ?? byRoutingKey[Self.anyRoutingKey]
    }
}
