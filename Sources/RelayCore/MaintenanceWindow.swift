/// "Not now": events for the routing keys or sources a window names, received between its start
/// and end, are accepted but not delivered, as PagerDuty's own maintenance windows do. With
/// `hold`, they are kept instead and delivered after the window, in order. Windows are part of
/// the replicated state; their times are wall-clock milliseconds, compared with each event's
/// `receivedAtMilliseconds`, so every node decides the same.
public struct MaintenanceWindow: Sendable, Equatable {
    /// What an operator asks for; checked by `validate` before it becomes a command.
    public struct Spec: Sendable, Equatable {
        public var startsAtMilliseconds: Int64
        public var endsAtMilliseconds: Int64
        /// Empty: every routing key (then `sourcePattern` must narrow it).
        public var routingKeys: [String]
        public var sourcePattern: String?
        public var reason: String
        public var hold: Bool

        public init(
            startsAtMilliseconds: Int64, endsAtMilliseconds: Int64, routingKeys: [String] = [], sourcePattern: String? = nil,
            reason: String, hold: Bool = false
        ) {
            self.startsAtMilliseconds = startsAtMilliseconds
            self.endsAtMilliseconds = endsAtMilliseconds
            self.routingKeys = routingKeys
            self.sourcePattern = sourcePattern
            self.reason = reason
            self.hold = hold
        }

        /// Refuses a window that could never do what was meant, or that would silence too much.
        public func validate(atMilliseconds now: Int64) throws(OperatorError) {
            guard endsAtMilliseconds > now else { throw OperatorError("end must be in the future") }
            guard endsAtMilliseconds > startsAtMilliseconds else { throw OperatorError("end must be after start") }
            guard endsAtMilliseconds - startsAtMilliseconds <= MaintenanceWindow.maxDurationMilliseconds else {
                throw OperatorError(
                    "a window may last at most \(MaintenanceWindow.maxDurationMilliseconds / 86_400_000) days; a longer silence should be a change to the monitoring, not a window"
                )
            }
            guard !routingKeys.isEmpty || sourcePattern != nil else {
                throw OperatorError(
                    "name routing_keys or a source_pattern (or both): a window over every event would silence everything")
            }
            guard routingKeys.count <= MaintenanceWindow.maxRoutingKeys else {
                throw OperatorError("at most \(MaintenanceWindow.maxRoutingKeys) routing_keys per window")
            }
            guard routingKeys.allSatisfy({ (1...255).contains($0.utf8.count) }) else {
                throw OperatorError("routing_keys must be 1-255 characters each")
            }
            if let sourcePattern { _ = try SourcePattern(sourcePattern) }
            guard (1...MaintenanceWindow.maxReasonCharacters).contains(reason.count) else {
                throw OperatorError(
                    "reason must be 1-\(MaintenanceWindow.maxReasonCharacters) characters: say why, for whoever is paged next")
            }
        }
    }

    /// A change to a window: fields left nil stay as they are.
    public struct Change: Sendable, Equatable {
        public var startsAtMilliseconds: Int64?
        public var endsAtMilliseconds: Int64?
        public var routingKeys: [String]?
        /// `.some(nil)` removes the pattern.
        public var sourcePattern: String??
        public var reason: String?
        public var hold: Bool?

        public init(
            startsAtMilliseconds: Int64? = nil, endsAtMilliseconds: Int64? = nil, routingKeys: [String]? = nil,
            sourcePattern: String?? = nil, reason: String? = nil, hold: Bool? = nil
        ) {
            self.startsAtMilliseconds = startsAtMilliseconds
            self.endsAtMilliseconds = endsAtMilliseconds
            self.routingKeys = routingKeys
            self.sourcePattern = sourcePattern
            self.reason = reason
            self.hold = hold
        }

        public func applied(to spec: Spec) -> Spec {
            var spec = spec
            if let startsAtMilliseconds { spec.startsAtMilliseconds = startsAtMilliseconds }
            if let endsAtMilliseconds { spec.endsAtMilliseconds = endsAtMilliseconds }
            if let routingKeys { spec.routingKeys = routingKeys }
            if let sourcePattern { spec.sourcePattern = sourcePattern }
            if let reason { spec.reason = reason }
            if let hold { spec.hold = hold }
            return spec
        }
    }

    /// PagerDuty's own windows have no limit, but a month of silence is a forgotten window.
    public static let maxDurationMilliseconds: Int64 = 31 * 86_400_000
    public static let maxRoutingKeys = 100
    public static let maxReasonCharacters = 1_024
    /// Windows kept, ended ones included: each is checked for every event received.
    public static let maxWindows = 1_000
    /// An ended window stays listed this long, so whoever ends one can see what it caught.
    public static let keptAfterEndMilliseconds: Int64 = 86_400_000

    public let id: UInt64
    public private(set) var spec: Spec
    public let createdAtMilliseconds: Int64
    /// Events it kept from PagerDuty: suppressed, or held and then released.
    public var suppressedCount = 0
    public var heldCount = 0

    public init(id: UInt64, spec: Spec, createdAtMilliseconds: Int64, suppressedCount: Int = 0, heldCount: Int = 0) {
        self.id = id
        self.spec = spec
        self.createdAtMilliseconds = createdAtMilliseconds
        self.suppressedCount = suppressedCount
        self.heldCount = heldCount
    }

    public mutating func replace(_ spec: Spec) { self.spec = spec }

    public func isActive(atMilliseconds time: Int64) -> Bool {
        spec.startsAtMilliseconds <= time && time < spec.endsAtMilliseconds
    }

    public func hasEnded(atMilliseconds time: Int64) -> Bool { time >= spec.endsAtMilliseconds }

    /// Whether an event of `routingKey` from `source` falls under the window (at any time).
    public func covers(routingKey: String, source: String?) -> Bool {
        guard spec.routingKeys.isEmpty || spec.routingKeys.contains(routingKey) else { return false }
        guard let pattern = spec.sourcePattern else { return true }
        guard let source else { return false }
        return SourcePattern.matches(pattern: pattern, source)
    }
}
