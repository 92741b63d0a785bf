import ClusterCore

/// Deliberate engine bugs, for proving that the simulator catches them (as `ProtocolFaults` does
/// for the protocol). They can be switched on only in debug builds, where the tests run; a
/// release build ignores them.
public struct EngineFaults: OptionSet, Sendable, Hashable {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }

    /// Whether `fault` is switched on. Always false in a release build, whatever was asked.
    public func injects(_ fault: EngineFaults) -> Bool {
        #if DEBUG
            return !fault.isEmpty && isSuperset(of: fault)
        #else
            return false
        #endif
    }

    public static let none: EngineFaults = []
    /// A client hears its result once the leader's own disk holds the entry, before it is
    /// committed and applied in its term.
    public static let answerBeforeApplied = EngineFaults(rawValue: 1 << 0)
    /// A key moves on as soon as its upstream answer arrives: its next event is sent at once,
    /// before the attempt's outcome (and the next event's intent) is durable.
    public static let releaseKeyBeforeOutcomeDurable = EngineFaults(rawValue: 1 << 1)
    /// Every message of a Ready leaves before its write is synced: a follower acknowledges
    /// entries (and grants votes) its disk does not yet hold.
    public static let acknowledgeBeforeSync = EngineFaults(rawValue: 1 << 2)
    /// The leader tells the core its entries are persisted when their write starts, so they
    /// count toward a majority before they are on its disk.
    public static let countOwnUnsyncedEntry = EngineFaults(rawValue: 1 << 3)
}
