import ClusterCore
import RelayCore
import RelayReplication

/// The executor's handle for a client's command, chosen by the executor and unique among those
/// waiting: its answer comes back with it.
public typealias RequestID = UInt64

/// What the engine asks its executor to carry out, in the order given.
public enum EngineAction: Sendable {
    /// Write the steps in one synced transaction, then call `writeCompleted` (or `writeFailed`).
    /// At most one write is out at a time.
    case write([StoreStep])
    /// Send the messages to their peers, in order.
    case send([Message<RelayStateMachine>])
    /// The command of `RequestID` has this outcome.
    case answer(RequestID, Result<CommandResult, EngineError>)
    /// Send the event upstream now; no byte may leave after `sendByMilliseconds` on the
    /// monotonic clock. Report the answer with `deliveryFinished`.
    case startDelivery(DeliveryOrder)
    /// Abandon the request for this event, if it is still out: its answer no longer matters.
    case cancelDelivery(eventNumber: UInt64)
    /// Call `flush` after this long: applied writes are waiting for a transaction.
    case flushLater(afterMilliseconds: Int64)
    /// The drain asked for is over: nothing is in flight and the tables are current.
    case drained
    /// Something an operator should see in the log or the metrics; no decision depends on it.
    case notice(EngineNotice)
}

/// One upstream request the engine has decided on.
public struct DeliveryOrder: Sendable, Equatable {
    public let event: QueuedEvent
    public let term: Term
    public let sendByMilliseconds: Int64
}

/// What the engine reports for logs and metrics.
public enum EngineNotice: Sendable {
    case roleChanged(from: Role, to: Role, term: Term)
    /// Committed entries this node applied, in log order.
    case applied([RaftNode<RelayStateMachine>.Applied])
    case deliveringAsLeader(term: Term, pending: Int, keys: Int, keysHeldForOlderRequests: Int, holdMilliseconds: Int64)
    case attempt(AttemptRecord, event: QueuedEvent, term: Term)
    /// A store write of `entries` log entries took `durationMilliseconds`.
    case committed(entries: Int, durationMilliseconds: Int64)
    case catchingUp(applied: LogIndex, leaderCommit: LogIndex, entriesBehind: LogIndex, voting: Bool)
    case caughtUp(applied: LogIndex)
    case frozen(gapMilliseconds: Int64)
    case storeFailed(String)
    /// `forShutdown`: a graceful shutdown's handover, not an operator's.
    case handedOver(term: Term, forShutdown: Bool)
    /// An operator's handover is over: this node follows, or still leads when no follower could
    /// take over before its deadline.
    case handOverEnded(stillLeader: Bool, term: Term)
    case newCluster
    case replacementNode
}
