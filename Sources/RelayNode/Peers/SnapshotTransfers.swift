import ClusterCore
import NIOConcurrencyHelpers

/// Where snapshot transfers stand, for `/v1/cluster`: the leader's outgoing ones, one per peer,
/// and a follower's incoming one. Written by the sender and receiver, read by the operations
/// routes.
final class SnapshotTransfers: Sendable {
    struct Progress: Sendable, Equatable {
        /// The other node: the peer a leader sends to, or the leader a follower receives from.
        var node: NodeID
        var snapshotIndex: LogIndex
        var bytesDone: UInt64
        var totalBytes: UInt64
        var startedAtMilliseconds: Int64
        var lastProgressAtMilliseconds: Int64
        var finished = false
        /// Bytes actually sent, resends included: near `totalBytes` when breaks resume well.
        var transmittedBytes: UInt64 = 0
        /// Requests of this transfer that failed (each followed by a resume).
        var interruptions = 0
        /// Why the last request of the transfer failed, until one succeeds.
        var lastError: String?
    }

    private struct State {
        var outgoing: [NodeID: Progress] = [:]
        var incoming: Progress?
    }

    private let state = NIOLockedValueBox(State())

    var outgoing: [NodeID: Progress] { state.withLockedValue { $0.outgoing } }
    var incoming: Progress? { state.withLockedValue { $0.incoming } }

    func updateOutgoing(to peer: NodeID, _ change: (inout Progress?) -> Void) {
        state.withLockedValue { change(&$0.outgoing[peer]) }
    }

    func updateIncoming(_ change: (inout Progress?) -> Void) {
        state.withLockedValue { change(&$0.incoming) }
    }
}
