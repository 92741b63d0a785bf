/// Node identities are the small integers of the static membership list.
public typealias NodeID = Int
public typealias Term = UInt64
public typealias LogIndex = UInt64

/// What the replicated log drives: a deterministic state machine. Every node applies the same
/// committed commands in the same order, and a copy of the value is a snapshot.
public protocol ReplicatedStateMachine: Sendable {
    associatedtype Command: Sendable, Equatable
    associatedtype Result: Sendable
    mutating func apply(_ command: Command) -> Result
    /// About how many bytes `command` takes on the wire: appends stop growing at
    /// `RaftNode.maxAppendBytes`, so one message of large commands cannot hold a link for long.
    static func replicationBytes(of command: Command) -> Int
}

/// One log entry. A nil command is the no-op a new leader appends to commit its term.
public struct Entry<Command: Sendable & Equatable>: Sendable, Equatable {
    public let term: Term
    public let index: LogIndex
    public let command: Command?

    public init(term: Term, index: LogIndex, command: Command?) {
        self.term = term
        self.index = index
        self.command = command
    }
}

/// The state machine at a log index: what a lagging or empty follower installs.
public struct Snapshot<Machine: ReplicatedStateMachine>: Sendable {
    public let index: LogIndex
    public let term: Term
    public let machine: Machine

    public init(index: LogIndex, term: Term, machine: Machine) {
        self.index = index
        self.term = term
        self.machine = machine
    }
}

/// What must be on disk before any promise that depends on it leaves the node.
public struct HardState: Sendable, Equatable {
    public var term: Term
    public var votedFor: NodeID?

    public init(term: Term, votedFor: NodeID?) {
        self.term = term
        self.votedFor = votedFor
    }
}

/// A node's durable state, as the shell hands it back at restart.
public struct DurableState<Machine: ReplicatedStateMachine>: Sendable {
    public var hardState: HardState
    public var snapshot: Snapshot<Machine>?
    /// Entries after the snapshot, in index order.
    public var entries: [Entry<Machine.Command>]

    public init(hardState: HardState, snapshot: Snapshot<Machine>?, entries: [Entry<Machine.Command>]) {
        self.hardState = hardState
        self.snapshot = snapshot
        self.entries = entries
    }
}

public enum Role: String, Sendable, Equatable {
    case follower
    /// Asking, without changing any term, whether an election could be won (thesis §9.6).
    case preCandidate
    case candidate
    case leader
}

/// Peer messages. `term` is the sender's current term, except in a pre-vote request, where it
/// is the term the sender would campaign in.
public struct Message<Machine: ReplicatedStateMachine>: Sendable {
    public enum Body: Sendable {
        case preVoteRequest(lastLogIndex: LogIndex, lastLogTerm: Term)
        case preVoteResponse(granted: Bool)
        /// `transfer` marks an election the old leader asked for (thesis §3.10): voters grant it
        /// even within the lease, because that leader has already given its lease up.
        case voteRequest(lastLogIndex: LogIndex, lastLogTerm: Term, transfer: Bool = false)
        case voteResponse(granted: Bool)
        /// Replication. `round` is the leader's heartbeat round when it was sent (an answer counts
        /// for the lease too).
        case append(prevLogIndex: LogIndex, prevLogTerm: Term, entries: [Entry<Machine.Command>], leaderCommit: LogIndex, round: UInt64)
        /// On failure `matchIndex` is a hint: the follower's last index that may match.
        case appendResponse(success: Bool, matchIndex: LogIndex, round: UInt64)
        case installSnapshot(Snapshot<Machine>, round: UInt64)
        case snapshotResponse(matchIndex: LogIndex, round: UInt64)
        /// The lease's heartbeat. It carries no log position, so it may overtake appends (the
        /// shell sends it on a lane of its own, and before earlier writes finish): it claims
        /// nothing about either node's disk. `round` numbers the leader's rounds for the lease;
        /// a follower commits up to `leaderCommit` only as far as its log is known to match this
        /// leader's.
        case heartbeat(leaderCommit: LogIndex, round: UInt64)
        /// `lastIndex` is a hint, the follower's last log index: it tells the leader that a
        /// follower lost entries it had acknowledged (a wiped disk), or is behind while the
        /// leader is idle.
        case heartbeatResponse(lastIndex: LogIndex, round: UInt64)
        /// The leader hands over: the receiver campaigns at once, skipping pre-vote.
        case timeoutNow
    }

    public let from: NodeID
    public let to: NodeID
    public let term: Term
    public let body: Body

    public init(from: NodeID, to: NodeID, term: Term, body: Body) {
        self.from = from
        self.to = to
        self.term = term
        self.body = body
    }

    /// Whether this message may leave at once, ahead of earlier Readys' writes and ahead of
    /// queued bulk data: a heartbeat or its answer promises nothing about the sender's disk. A
    /// vote (its `hardState`) and an acknowledgement (its entries) must wait for their write.
    public var isHeartbeat: Bool {
        switch body {
        case .heartbeat, .heartbeatResponse: true
        default: false
        }
    }

    /// Whether this message carries log data, entries or a snapshot: it travels on the bulk lane,
    /// behind earlier bulk data to the same peer and never ahead of it.
    public var isBulk: Bool {
        switch body {
        case .append, .installSnapshot: true
        default: false
        }
    }
}

extension DurableState {
    /// Writes a `Ready`'s durable part in the order the contract of `RaftNode` requires: hard
    /// state, truncation, entries, then a leader's snapshot. A compaction drops nothing here:
    /// this model keeps no applied state, so its log is what rebuilds the machine.
    public mutating func write(_ ready: RaftNode<Machine>.Ready) {
        if let hardState = ready.hardState { self.hardState = hardState }
        if let after = ready.truncateAfter { truncate(after: after) }
        append(ready.entries)
        if let snapshot = ready.snapshot { keep(snapshot) }
    }

    /// Drops the entries after `index`.
    public mutating func truncate(after index: LogIndex) {
        entries.removeAll { $0.index > index }
    }

    /// Writes entries in index order, each replacing whatever was at its index and after.
    public mutating func append(_ newEntries: [Entry<Machine.Command>]) {
        for entry in newEntries {
            // The entries follow the snapshot without a gap, so those at and after `entry.index`
            // are the tail.
            let base = snapshot?.index ?? 0
            precondition(entry.index > base && entry.index <= lastIndex + 1, "entry \(entry.index) written after \(lastIndex)")
            entries.removeLast(Int(lastIndex + 1 - entry.index))
            entries.append(entry)
        }
    }

    /// Keeps `snapshot`, and the entries after it if the log agrees with it there.
    public mutating func keep(_ snapshot: Snapshot<Machine>) {
        let agrees = entries.contains { $0.index == snapshot.index && $0.term == snapshot.term }
        entries = agrees ? entries.filter { $0.index > snapshot.index } : []
        self.snapshot = snapshot
    }

    /// The last index on disk.
    public var lastIndex: LogIndex { entries.last?.index ?? snapshot?.index ?? 0 }

    /// Whether the disk holds entry `index` of `term`, itself or inside the snapshot.
    public func holds(index: LogIndex, term: Term) -> Bool {
        if let snapshot, index <= snapshot.index { return true }
        guard let first = entries.first?.index, index >= first, index - first < LogIndex(entries.count) else { return false }
        return entries[Int(index - first)].term == term
    }
}
