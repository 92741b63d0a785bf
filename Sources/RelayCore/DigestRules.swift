/// Which routing keys send low-priority triggers as a periodic digest instead of one by one:
/// "info:600" means triggers of severity info are summarised every 600 s; "warning:3600" takes
/// warning and info, hourly. A routing key's own entry, else the `*` entry, else none. Part of
/// `RelayStateMachine.Limits`, so every node must hold the same table.
public struct DigestRules: Sendable, Equatable {
    public struct Rule: Sendable, Equatable {
        /// Triggers at or below it are digested.
        public let maxSeverity: Severity
        public let intervalMilliseconds: Int64

        public init(maxSeverity: Severity, intervalMilliseconds: Int64) {
            self.maxSeverity = maxSeverity
            self.intervalMilliseconds = intervalMilliseconds
        }

        /// Whether a trigger of `severity` waits for the digest. Critical never does: a page
        /// must not wait for a summary.
        public func digests(_ severity: Severity) -> Bool {
            severity != .critical && Self.rank(severity) <= Self.rank(maxSeverity)
        }

        static func rank(_ severity: Severity) -> Int {
            switch severity {
            case .info: 0
            case .warning: 1
            case .error: 2
            case .critical: 3
            }
        }
    }

    public static let maxEntries = 1_000
    /// A minute: shorter, a digest is just a slower flood.
    public static let minIntervalMilliseconds: Int64 = 60_000
    /// A day: "asynchronous review" still means the same day.
    public static let maxIntervalMilliseconds: Int64 = 86_400_000

    private let byRoutingKey: [String: Rule]

    public init() { byRoutingKey = [:] }

    /// `entries` maps routing keys (or `*`) to `SEVERITY:SECONDS`.
    public init(_ entries: [String: String]) throws(ConfigurationError) {
        guard entries.count <= Self.maxEntries else {
            throw ConfigurationError("digests has \(entries.count) entries; at most \(Self.maxEntries) are allowed")
        }
        var rules: [String: Rule] = [:]
        for (routingKey, text) in entries {
            let parts = text.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 2, let severity = Severity(rawValue: String(parts[0])), severity != .critical,
                let seconds = Int64(parts[1]),
                (Self.minIntervalMilliseconds / 1_000...Self.maxIntervalMilliseconds / 1_000).contains(seconds)
            else {
                throw ConfigurationError(
                    "digests entry for \(RoutingKeyMask.mask(routingKey)) must be SEVERITY:SECONDS, the severity info, warning or error (never critical), the seconds \(Self.minIntervalMilliseconds / 1_000)-\(Self.maxIntervalMilliseconds / 1_000), such as \"info:600\"; not '\(text.prefix(40))'"
                )
            }
            rules[routingKey] = Rule(maxSeverity: severity, intervalMilliseconds: seconds * 1_000)
        }
        byRoutingKey = rules
    }

    public func rule(for routingKey: String) -> Rule? { byRoutingKey[routingKey] ?? byRoutingKey[DedupKeyTemplates.anyRoutingKey] }
}
