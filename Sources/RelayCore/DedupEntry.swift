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
