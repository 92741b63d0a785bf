/// An accepted event that has not yet been delivered: waiting (`pending`) or given up on (`dead`).
public struct QueuedEvent: Sendable, Equatable {
    public enum State: String, Sendable, Codable, CaseIterable {
        case pending
        case dead
    }

    /// Assigned in acceptance order; per-key delivery order is the order of these numbers.
    public let number: UInt64
    public let kind: EventKind
    public let action: EventAction
    public let key: OrderingKey
    /// The exact bytes that go upstream.
    public var body: [UInt8]
    public var fingerprint: [UInt8]
    /// Wall-clock time of acceptance, for people and for the duplicate window; never for timeouts.
    public var receivedAtMilliseconds: Int64
    public var state: State
    public var attempts: Int
    /// The last failure, or for a dead event the reason it was given up on.
    public var lastError: String?

    public init(
        number: UInt64, kind: EventKind, action: EventAction, key: OrderingKey, body: [UInt8],
        fingerprint: [UInt8], receivedAtMilliseconds: Int64, state: State = .pending, attempts: Int = 0,
        lastError: String? = nil
    ) {
        self.number = number
        self.kind = kind
        self.action = action
        self.key = key
        self.body = body
        self.fingerprint = fingerprint
        self.receivedAtMilliseconds = receivedAtMilliseconds
        self.state = state
        self.attempts = attempts
        self.lastError = lastError
    }
}

/// What the relay remembers about one incident key after its events are gone: enough to tell a
/// client retry from a new event, and a stale dead letter from a current one.
public struct DedupEntry: Sendable, Equatable {
    public let key: OrderingKey
    /// The newest event accepted for this key.
    public var lastNumber: UInt64
    public var lastAction: EventAction
    public var lastFingerprint: [UInt8]
    public var lastAcceptedAtMilliseconds: Int64
    /// True when the relay chose the key (a trigger without dedup_key, a change event), so a
    /// client retry can only be recognised by its fingerprint.
    public var keyWasAssigned: Bool

    public init(
        key: OrderingKey, lastNumber: UInt64, lastAction: EventAction, lastFingerprint: [UInt8],
        lastAcceptedAtMilliseconds: Int64, keyWasAssigned: Bool
    ) {
        self.key = key
        self.lastNumber = lastNumber
        self.lastAction = lastAction
        self.lastFingerprint = lastFingerprint
        self.lastAcceptedAtMilliseconds = lastAcceptedAtMilliseconds
        self.keyWasAssigned = keyWasAssigned
    }
}

/// One delivery attempt, kept for `pdrelay queue show`.
public struct AttemptRecord: Sendable, Equatable, Codable {
    public enum Outcome: String, Sendable, Codable {
        case delivered
        case retry
        case deadLettered = "dead_lettered"
    }

    public var outcome: Outcome
    public var atMilliseconds: Int64
    public var durationMilliseconds: Int64
    /// The upstream's HTTP status; nil when no answer came (timeout, connection error).
    public var statusCode: Int?
    /// PagerDuty's answer or the error, with routing keys masked.
    public var detail: String

    public init(outcome: Outcome, atMilliseconds: Int64, durationMilliseconds: Int64, statusCode: Int?, detail: String) {
        self.outcome = outcome
        self.atMilliseconds = atMilliseconds
        self.durationMilliseconds = durationMilliseconds
        self.statusCode = statusCode
        self.detail = detail
    }
}

/// Selects events for operator commands. Empty fields match everything.
public struct EventFilter: Sendable, Equatable, Codable {
    public var routingKey: String?
    public var dedupKey: String?
    public var eventNumber: UInt64?
    public var states: Set<QueuedEvent.State>

    public init(
        routingKey: String? = nil, dedupKey: String? = nil, eventNumber: UInt64? = nil,
        states: Set<QueuedEvent.State> = Set(QueuedEvent.State.allCases)
    ) {
        self.routingKey = routingKey
        self.dedupKey = dedupKey
        self.eventNumber = eventNumber
        self.states = states
    }

    enum CodingKeys: String, CodingKey {
        case routingKey = "routing_key"
        case dedupKey = "dedup_key"
        case eventNumber = "event_number"
        case states
    }

    /// Missing fields match everything, so `{}` selects the whole queue.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        routingKey = try container.decodeIfPresent(String.self, forKey: .routingKey)
        dedupKey = try container.decodeIfPresent(String.self, forKey: .dedupKey)
        eventNumber = try container.decodeIfPresent(UInt64.self, forKey: .eventNumber)
        states = try container.decodeIfPresent(Set<QueuedEvent.State>.self, forKey: .states) ?? Set(QueuedEvent.State.allCases)
    }

    public func matches(_ event: QueuedEvent) -> Bool {
        states.contains(event.state) && (routingKey.map { $0 == event.key.routingKey } ?? true)
            && (dedupKey.map { $0 == event.key.dedupKey } ?? true) && (eventNumber.map { $0 == event.number } ?? true)
    }
}
