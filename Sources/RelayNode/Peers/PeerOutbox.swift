import ClusterCore
import DequeModule
import Logging
import NIOConcurrencyHelpers
import RelayCore
import RelayReplication

/// One lane to one peer. A single request is in flight, so messages arrive in order and whatever
/// queued meanwhile goes out as the next batch. The outbox is bounded: when a peer is unreachable
/// the oldest messages are dropped, which the protocol tolerates (it resends).
final class PeerOutbox: Sendable {
    static let maxOutboxMessages = 10_000
    static let maxBatchMessages = 1_024
    /// A batch stops growing past this many bytes of entries (a single message may exceed it).
    static let batchByteBudget = 4 * 1_024 * 1_024

    private struct State {
        var outbox: Deque<Message<RelayStateMachine>> = []
        var sending = false
        var closed = false
        var failures = 0
    }

    let peer: NodeID
    /// "control" or "bulk", for logs and metrics.
    let lane: String
    private let client: PeerClient
    private let requestTimeoutMilliseconds: Int64
    /// Carries snapshots, in chunks of their own (the bulk lane only).
    private let snapshots: SnapshotSender?
    private let metrics: NodeMetrics
    private let logger: Logger
    private let state = NIOLockedValueBox(State())

    init(
        peer: NodeID, lane: String, client: PeerClient, requestTimeoutMilliseconds: Int64, snapshots: SnapshotSender?,
        metrics: NodeMetrics, logger: Logger
    ) {
        self.peer = peer
        self.lane = lane
        self.client = client
        self.requestTimeoutMilliseconds = requestTimeoutMilliseconds
        self.snapshots = snapshots
        self.metrics = metrics
        self.logger = logger
    }

    /// Stops sending: the HTTP client is about to shut down.
    func close() {
        state.withLockedValue { $0.closed = true }
        snapshots?.close()
    }

    var isIdle: Bool { state.withLockedValue { $0.outbox.isEmpty && !$0.sending } }

    func enqueue(_ messages: [Message<RelayStateMachine>]) {
        guard !messages.isEmpty else { return }
        let (start, dropped) = state.withLockedValue { state -> (Bool, Int) in
            // The leader asks again for a snapshot until the follower answers; one queued copy,
            // the newest, is enough (a transfer under way is not restarted by it).
            if messages.contains(where: Self.isSnapshot) { state.outbox.removeAll(where: Self.isSnapshot) }
            state.outbox.append(contentsOf: messages)
            let dropped = max(0, state.outbox.count - Self.maxOutboxMessages)
            state.outbox.removeFirst(dropped)
            defer { state.sending = true }
            return (!state.sending, dropped)
        }
        if dropped > 0 { metrics.peerMessages(dropped, peer: peer, result: "dropped") }
        if start { Task { await self.drain() } }
    }

    private func drain() async {
        while let batch = nextBatch() {
            if let snapshots, batch.count == 1, case .installSnapshot(let snapshot, let round) = batch[0].body {
                await snapshots.transfer(snapshot, term: batch[0].term, round: round)
                continue
            }
            do {
                _ = try await client.post(
                    PeerWire.messagesPath, body: MessageCodec.encode(batch), to: peer, timeoutMilliseconds: requestTimeoutMilliseconds)
                metrics.peerMessages(batch.count, peer: peer, result: "sent")
                let recovered = state.withLockedValue { state in
                    defer { state.failures = 0 }
                    return state.failures > 0
                }
                if recovered { logger.notice("peer reachable again", metadata: ["peer": "\(peer)", "lane": "\(lane)"]) }
            } catch {
                metrics.peerMessages(batch.count, peer: peer, result: "failed")
                let failures = state.withLockedValue { state in
                    state.failures += 1
                    return state.failures
                }
                if failures == 1 {
                    logger.warning("peer request failed", metadata: ["peer": "\(peer)", "lane": "\(lane)", "error": "\(error)"])
                }
                // The messages are dropped: by the time the peer is back, newer ones say more.
                try? await Task.sleep(for: .milliseconds(min(20 * Int64(failures), 200)))
            }
        }
    }

    /// The next batch; a snapshot always travels alone.
    private func nextBatch() -> [Message<RelayStateMachine>]? {
        state.withLockedValue { state in
            guard let first = state.outbox.first, !state.closed else {
                state.sending = false
                return nil
            }
            if Self.isSnapshot(first) { return [state.outbox.removeFirst()] }
            var batch: [Message<RelayStateMachine>] = []
            var bytes = 0
            while let message = state.outbox.first, !Self.isSnapshot(message), batch.count < Self.maxBatchMessages,
                batch.isEmpty || bytes < Self.batchByteBudget
            {
                state.outbox.removeFirst()
                batch.append(message)
                bytes += Self.estimatedBytes(message)
            }
            return batch
        }
    }

    private static func isSnapshot(_ message: Message<RelayStateMachine>) -> Bool {
        if case .installSnapshot = message.body { return true }
        return false
    }

    private static func estimatedBytes(_ message: Message<RelayStateMachine>) -> Int {
        guard case .append(_, _, let entries, _, _) = message.body else { return 64 }
        return entries.reduce(64) { total, entry in total + (entry.command.map(RelayStateMachine.replicationBytes(of:)) ?? 64) }
    }
}

/// The two lanes to one peer. Heartbeats, votes and every answer take the control lane, so they
/// never wait behind megabytes of entries or a snapshot on the bulk lane (each lane is its own
/// connection, one request in flight).
struct PeerLink: Sendable {
    let control: PeerOutbox
    let bulk: PeerOutbox

    func enqueue(_ messages: [Message<RelayStateMachine>]) {
        bulk.enqueue(messages.filter(\.isBulk))
        control.enqueue(messages.filter { !$0.isBulk })
    }

    var isIdle: Bool { control.isIdle && bulk.isIdle }

    func close() {
        control.close()
        bulk.close()
    }
}
