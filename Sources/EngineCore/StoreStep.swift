import ClusterCore
import RelayCore
import RelayReplication

/// One durable change, in the order the core's `Ready` contract lists them. The engine hands a
/// batch of steps to its store as one synced transaction (`EngineAction.write`).
public enum StoreStep: Sendable {
    case hardState(HardState)
    case truncate(after: LogIndex)
    case entries([Entry<RelayCommand>])
    /// The store writes of applied entries, through `index` of `term`.
    case applied(index: LogIndex, term: Term, [StoreMutation])
    /// A snapshot received from the leader replaces the whole state.
    case install(Snapshot<RelayStateMachine>)
    /// Entries up to `through` are applied and in the tables: the log no longer needs them. (A
    /// store without tables, such as the simulator's disk, keeps them.)
    case compact(through: LogIndex)
    /// Set while a node that lost its disk catches up; it must not vote meanwhile.
    case recovering(Bool)
}
