/// A dead man's switch: a source that should check in every `interval`. When a check-in is
/// missed by more than `grace`, the leader triggers an incident with a stable dedup_key; the next
/// check-in resolves it. The heartbeat is replicated; the timer is the leader's own
/// (`HeartbeatWatch`), restarted in full on a new leader.
public struct Heartbeat: Sendable, Equatable {
    public struct Spec: Sendable, Equatable {
        /// The integration the missed-check-in incident goes to; check-ins must carry it.
        public var routingKey: String
        public var intervalMilliseconds: Int64
        public var graceMilliseconds: Int64
        public var severity: Severity
        /// The incident's `payload.source`: the monitored host or job.
        public var source: String

        public init(
            routingKey: String, intervalMilliseconds: Int64, graceMilliseconds: Int64, severity: Severity = .critical, source: String
        ) {
            self.routingKey = routingKey
            self.intervalMilliseconds = intervalMilliseconds
            self.graceMilliseconds = graceMilliseconds
            self.severity = severity
            self.source = source
        }

        public func validate() throws(OperatorError) {
            guard (1...255).contains(routingKey.utf8.count), routingKey.utf8.allSatisfy(ASCII.isAlphanumeric) else {
                throw OperatorError("routing_key must be 1-255 letters and digits, as PagerDuty's integration keys are")
            }
            guard (Heartbeat.minIntervalMilliseconds...Heartbeat.maxIntervalMilliseconds).contains(intervalMilliseconds) else {
                throw OperatorError(
                    "interval_seconds must be \(Heartbeat.minIntervalMilliseconds / 1_000)-\(Heartbeat.maxIntervalMilliseconds / 1_000): shorter than a failover could raise false alarms"
                )
            }
            guard (0...Heartbeat.maxGraceMilliseconds).contains(graceMilliseconds) else {
                throw OperatorError("grace_seconds must be 0-\(Heartbeat.maxGraceMilliseconds / 1_000)")
            }
            guard (1...IncidentFacts.maxSourceCharacters).contains(source.count) else {
                throw OperatorError("source must be 1-\(IncidentFacts.maxSourceCharacters) characters")
            }
        }
    }

    /// Below this a leader change (a few seconds) is a large share of the interval.
    public static let minIntervalMilliseconds: Int64 = 10_000
    /// A week: the longest cron period anyone checks on.
    public static let maxIntervalMilliseconds: Int64 = 7 * 86_400_000
    public static let maxGraceMilliseconds: Int64 = 86_400_000
    public static let maxHeartbeats = 10_000
    public static let maxNameCharacters = 128

    public let name: String
    public var spec: Spec
    public let createdAtMilliseconds: Int64
    /// The last check-in, by the wall clock of the node that took it: for people, never timers.
    public var lastCheckInAtMilliseconds: Int64?
    /// Check-ins so far: the leader's timer restarts whenever it changes.
    public var checkIns: UInt64
    /// A missed-check-in incident is open (triggered and not yet resolved).
    public var alarmed: Bool
    public var alarms: Int

    public init(
        name: String, spec: Spec, createdAtMilliseconds: Int64, lastCheckInAtMilliseconds: Int64? = nil, checkIns: UInt64 = 0,
        alarmed: Bool = false, alarms: Int = 0
    ) {
        self.name = name
        self.spec = spec
        self.createdAtMilliseconds = createdAtMilliseconds
        self.lastCheckInAtMilliseconds = lastCheckInAtMilliseconds
        self.checkIns = checkIns
        self.alarmed = alarmed
        self.alarms = alarms
    }

    /// The incident's dedup_key: stable, so the trigger and its resolve meet, and every alarm of
    /// the heartbeat is the same incident in PagerDuty.
    public var dedupKey: String { "pdrelay-heartbeat/\(name)" }

    /// Names go in URLs and dedup keys: letters, digits, `.`, `_` and `-`.
    public static func validate(name: String) throws(OperatorError) {
        let allowed = name.utf8.allSatisfy {
            ASCII.isAlphanumeric($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-")
        }
        guard (1...maxNameCharacters).contains(name.utf8.count), allowed else {
            throw OperatorError("a heartbeat's name must be 1-\(maxNameCharacters) letters, digits, '.', '_' or '-'")
        }
    }

    /// The trigger for a missed check-in, as a client would send it, so it takes the same path
    /// as any event (maintenance windows, folders, budgets).
    public func triggerBody(atMilliseconds now: Int64) -> [UInt8] {
        let last = lastCheckInAtMilliseconds.map(MaintenanceWindowView.rfc3339) ?? "never"
        let details: [String: JSONValue] = [
            "heartbeat": .string(name), "last_check_in": .string(last), "interval_seconds": .integer(spec.intervalMilliseconds / 1_000),
            "grace_seconds": .integer(spec.graceMilliseconds / 1_000), "missed_at": .string(MaintenanceWindowView.rfc3339(now)),
        ]
        return JSONValue.object([
            "routing_key": .string(spec.routingKey), "event_action": "trigger", "dedup_key": .string(dedupKey),
            "client": "pdrelay heartbeat",
            "payload": .object([
                "summary": .string(
                    "Heartbeat \(name) missed: no check-in since \(last) (expected every \(spec.intervalMilliseconds / 1_000) s)"),
                "source": .string(spec.source), "severity": .string(spec.severity.rawValue), "component": "heartbeat",
                "class": "missed check-in", "custom_details": .object(details),
            ]),
        ]).encoded()
    }

    public func resolveBody(routingKey: String) -> [UInt8] {
        JSONValue.object(["routing_key": .string(routingKey), "event_action": "resolve", "dedup_key": .string(dedupKey)]).encoded()
    }
}
