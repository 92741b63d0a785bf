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
