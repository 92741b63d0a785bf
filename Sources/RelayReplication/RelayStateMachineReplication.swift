import ClusterCore
import RelayCore

/// The cluster replicates the relay's own queue and dedup state machine: the log's commands are
/// `RelayCommand`s, and applying one gives its result plus the store writes and the keys whose
/// next delivery may have changed.
extension RelayStateMachine: ReplicatedStateMachine {
    public struct Applied: Sendable {
        public let result: CommandResult
        public let effects: Effects
    }

    public mutating func apply(_ command: RelayCommand) -> Applied {
        var effects = Effects()
        let result = apply(command, effects: &effects)
        return Applied(result: result, effects: effects)
    }

    /// An accepted event is its body plus a little; every other command is small.
    public static func replicationBytes(of command: RelayCommand) -> Int {
        switch command {
        case .accept(let acceptance), .acceptAndOpenIntent(let acceptance, _): return acceptance.body.count + 64
        default: return 64
        }
    }
}
