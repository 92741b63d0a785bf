import ClusterCore
import EngineCore
import NIOConcurrencyHelpers
import RelayCore

/// Gathers the commands a follower hands to its leader while earlier forwards are in flight, so
/// that concurrent client requests share one peer request, and on the leader one proposal and
/// one fsync. At most `maxInFlight` requests per leader are outstanding.
final class ForwardBatcher: Sendable {
    typealias Outcome = Result<CommandResult, EngineError>
    /// `holdRemaining`: per command, the milliseconds left before the leader must refuse it as
    /// stale (nil: no limit).
    typealias Send = @Sendable (_ commands: [RelayCommand], _ holdRemaining: [Int64?], _ leader: NodeID) async -> [Outcome]

    static let maxInFlight = 2
    static let maxBatchCommands = 512
    /// A batch stops growing past this many bytes of event bodies.
    static let batchByteBudget = 4 * 1_024 * 1_024

    private struct Pending {
        let command: RelayCommand
        /// On this node's monotonic clock.
        let holdDeadline: Int64?
        let continuation: CheckedContinuation<Outcome, Never>
    }

    private struct Queue {
        var pending: [Pending] = []
        var inFlight = 0
    }

    private let queues = NIOLockedValueBox([NodeID: Queue]())
    private let send: Send
    private let monotonicMilliseconds: @Sendable () -> Int64

    init(monotonicMilliseconds: @escaping @Sendable () -> Int64, send: @escaping Send) {
        self.monotonicMilliseconds = monotonicMilliseconds
        self.send = send
    }

    func forward(_ command: RelayCommand, holdDeadlineMilliseconds: Int64?, to leader: NodeID) async -> Outcome {
        await withCheckedContinuation { continuation in
            let start = queues.withLockedValue { queues in
                queues[leader, default: Queue()].pending.append(
                    Pending(command: command, holdDeadline: holdDeadlineMilliseconds, continuation: continuation))
                guard queues[leader]!.inFlight < Self.maxInFlight else { return false }
                queues[leader]!.inFlight += 1
                return true
            }
            if start { Task { await self.drain(leader) } }
        }
    }

    private func drain(_ leader: NodeID) async {
        while var batch = nextBatch(leader) {
            // What waited here past its hold is refused now rather than sent to be refused.
            let now = monotonicMilliseconds()
            batch.removeAll { pending in
                guard let holdDeadline = pending.holdDeadline, now >= holdDeadline else { return false }
                pending.continuation.resume(returning: .failure(.staleRequest))
                return true
            }
            guard !batch.isEmpty else { continue }
            let outcomes = await send(batch.map(\.command), batch.map { $0.holdDeadline.map { $0 - now } }, leader)
            precondition(outcomes.count == batch.count, "\(outcomes.count) outcomes for \(batch.count) forwarded commands")
            for (pending, outcome) in zip(batch, outcomes) { pending.continuation.resume(returning: outcome) }
        }
    }

    private func nextBatch(_ leader: NodeID) -> [Pending]? {
        queues.withLockedValue { queues in
            var queue = queues[leader]!
            defer { queues[leader] = queue }
            guard !queue.pending.isEmpty else {
                queue.inFlight -= 1
                return nil
            }
            var bytes = 0
            var count = 0
            for pending in queue.pending {
                guard count < Self.maxBatchCommands, count == 0 || bytes < Self.batchByteBudget else { break }
                if case .accept(let acceptance) = pending.command { bytes += acceptance.body.count }
                count += 1
            }
            let batch = Array(queue.pending.prefix(count))
            queue.pending.removeFirst(count)
            return batch
        }
    }
}
