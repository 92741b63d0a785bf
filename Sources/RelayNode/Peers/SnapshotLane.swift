import ClusterCore
import NIOConcurrencyHelpers
import RelayCore

/// Snapshots to one peer, beside its stream: a transfer of gigabytes in chunks over HTTP
/// (`SnapshotSender`) must not hold up heartbeats and appends. The leader asks for the same
/// snapshot again until the follower answers; only the newest request waits, and a transfer
/// under way is not restarted by it.
final class SnapshotLane: Sendable {
    private struct State {
        var pending: Message<RelayStateMachine>?
        var sending = false
    }

    private let sender: SnapshotSender
    private let state = NIOLockedValueBox(State())

    init(sender: SnapshotSender) { self.sender = sender }

    var isIdle: Bool { state.withLockedValue { $0.pending == nil && !$0.sending } }

    func send(_ message: Message<RelayStateMachine>) {
        guard case .installSnapshot = message.body else { preconditionFailure("only snapshots take the snapshot lane") }
        let start = state.withLockedValue { state in
            state.pending = message
            defer { state.sending = true }
            return !state.sending
        }
        if start { Task { await self.drain() } }
    }

    func close() { sender.close() }

    private func drain() async {
        while let message = state.withLockedValue({ state -> Message<RelayStateMachine>? in
            defer { state.pending = nil }
            if state.pending == nil { state.sending = false }
            return state.pending
        }) {
            guard case .installSnapshot(let snapshot, let round) = message.body else { continue }
            await sender.transfer(snapshot, term: message.term, round: round)
        }
    }
}
