import ClusterCore
import DequeModule
import EngineCore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import RelayCore
import RelayReplication

/// Everything a peer stream needs from its node, shared by the streams to every peer.
struct PeerStreamContext: Sendable {
    let inbound: PeerInbound
    let clockSkew: ClockSkewMonitor
    let metrics: NodeMetrics
    let environment: NodeEnvironment
    let logger: Logger
    /// Nothing received for this long (not even a `clock` frame), or a write stuck for this long
    /// (the peer stopped reading), and the connection is closed: the peer is dead, frozen, or
    /// half-open. The same bound as Raft's own patience with a silent peer.
    let silenceLimitMilliseconds: Int64
    /// How often each side sends its wall clock: what keeps an idle link from looking dead, and
    /// the skew measured.
    let clockIntervalMilliseconds: Int64
    /// How long a forwarded command waits for the leader's answer.
    let forwardTimeoutMilliseconds: Int64
}

/// The data path to one peer: one authenticated TCP connection at a time (the lower node id
/// dials, `PeerTransport`), carrying Raft messages both ways, forwarded client commands and
/// their outcomes. Frames are queued in a bounded outbox and written by one writer per
/// connection, which seals them in order and waits while the socket is full (back-pressure);
/// Raft messages queued together travel as one frame.
///
/// A connection that ends takes its queued messages with it (Raft resends what matters) and
/// fails the forwards still waiting on it, so their clients are answered at once. A newer
/// connection from the same peer replaces an older one.
final class PeerStream: Sendable {
    typealias Outcome = Result<CommandResult, EngineError>

    static let maxOutboxItems = 10_000
    static let maxBatchMessages = 1_024
    /// A batch stops growing past this many bytes of entries (a single message may exceed it).
    static let batchByteBudget = 4 * 1_024 * 1_024
    /// Forwards waiting for an answer on one link, at most (`ForwardBatcher` keeps two).
    static let maxPendingForwards = 64
    /// Frames handed to the socket in one write (one flush).
    static let maxFramesPerWrite = 64

    private enum Outgoing: Sendable {
        case message(Message<RelayStateMachine>)
        case frame(PeerFrame.Kind, [UInt8])
    }

    private struct Attached: Sendable {
        let number: UInt64
        let channel: any Channel
        let wake: AsyncStream<Void>.Continuation
    }

    private struct PendingForward: Sendable {
        let count: Int
        /// Monotonic; `watch` fails the forward when it passes.
        let deadline: Int64
        let continuation: CheckedContinuation<[Outcome], Never>
    }

    private struct State {
        var outbox = Deque<Outgoing>()
        var attached: Attached?
        var connections: UInt64 = 0
        var forwards: [UInt64: PendingForward] = [:]
        var forwardsSent: UInt64 = 0
        /// Monotonic: when the writer began the write in progress, if one is.
        var writingSince: Int64?
        var lastReceivedAt: Int64 = 0
        var failures = 0
        var closed = false
    }

    let peer: NodeID
    private let context: PeerStreamContext
    private let state = NIOLockedValueBox(State())

    init(peer: NodeID, context: PeerStreamContext) {
        self.peer = peer
        self.context = context
    }

    var isConnected: Bool { state.withLockedValue { $0.attached != nil } }

    /// Nothing queued and nothing being written.
    var isIdle: Bool { state.withLockedValue { $0.outbox.isEmpty && $0.writingSince == nil } }

    /// Queues Raft messages; returns at once. Dropped when no connection is up, or when the
    /// outbox is full (the oldest first): the protocol resends.
    func send(_ messages: [Message<RelayStateMachine>]) {
        guard !messages.isEmpty else { return }
        let dropped = state.withLockedValue { state -> Int in
            guard let attached = state.attached else { return messages.count }
            for message in messages { state.outbox.append(.message(message)) }
            let dropped = max(0, state.outbox.count - Self.maxOutboxItems)
            state.outbox.removeFirst(dropped)
            attached.wake.yield()
            return dropped
        }
        if dropped > 0 { context.metrics.peerMessages(dropped, peer: peer, result: "dropped") }
    }

    /// Hands client commands to this peer, the leader; one outcome per command, within
    /// `forwardTimeoutMilliseconds`.
    func forward(_ commands: [RelayCommand], holdRemainingMilliseconds: [Int64?]) async -> [Outcome] {
        let body = PeerWire.encode(commands: commands, holdRemainingMilliseconds: holdRemainingMilliseconds)
        let deadline = context.environment.monotonicMilliseconds() + context.forwardTimeoutMilliseconds
        return await withCheckedContinuation { continuation in
            let queued = state.withLockedValue { state -> Bool in
                guard let attached = state.attached, state.forwards.count < Self.maxPendingForwards else { return false }
                state.forwardsSent += 1
                let number = state.forwardsSent
                state.forwards[number] = PendingForward(count: commands.count, deadline: deadline, continuation: continuation)
                var writer = ByteWriter(capacity: 10 + body.count)
                writer.write(number)
                writer.write(raw: body)
                state.outbox.append(.frame(.forward, writer.bytes))
                attached.wake.yield()
                return true
            }
            if !queued {
                let reason = "no connection to node \(peer), or too many forwards waiting on it"
                continuation.resume(returning: [Outcome](repeating: .failure(.peerFailed(reason)), count: commands.count))
                return
            }
        }
    }

    /// Answers a forward once: with the leader's outcomes, or with `reason` for every command.
    private func finishForward(_ number: UInt64, _ outcomes: [Outcome]?, reason: String = "") {
        guard let pending = state.withLockedValue({ $0.forwards.removeValue(forKey: number) }) else { return }
        guard let outcomes, pending.count == outcomes.count else {
            let reason = outcomes.map { "node \(peer) answered \($0.count) outcomes for \(pending.count) commands" } ?? reason
            pending.continuation.resume(returning: [Outcome](repeating: .failure(.peerFailed(reason)), count: pending.count))
            return
        }
        // The leader's own failure keeps its meaning here, and says whose store it was.
        pending.continuation.resume(
            returning: outcomes.map { outcome in
                outcome.mapError { error in
                    if case .storeFailed(let reason) = error { return .storeFailed("on node \(peer), the leader: \(reason)") }
                    return error
                }
            })
    }

    /// Runs an authenticated connection until it ends, reading in this task and writing in a
    /// child; `splitter` holds whatever arrived after the handshake.
    func run(
        _ channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>, session: PeerSession,
        inbound: inout NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator, splitter: inout PeerFrameSplitter,
        outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    ) async {
        let (wakes, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let now = context.environment.monotonicMilliseconds()
        let (number, replaced) = state.withLockedValue { state -> (UInt64?, Attached?) in
            guard !state.closed else { return (nil, nil) }
            state.connections += 1
            let replaced = state.attached
            state.attached = Attached(number: state.connections, channel: channel.channel, wake: wake)
            state.outbox.removeAll()
            state.lastReceivedAt = now
            state.writingSince = nil
            return (state.connections, replaced)
        }
        guard let number else { return }
        replaced?.channel.close(promise: nil)
        let recovered = state.withLockedValue { state in
            defer { state.failures = 0 }
            return state.failures > 0
        }
        context.metrics.peerConnection(peer: peer, event: "established")
        if recovered {
            context.logger.notice("peer reachable again", metadata: ["peer": "\(peer)"])
        } else {
            context.logger.debug("peer stream up", metadata: ["peer": "\(peer)", "connection": "\(number)"])
        }
        wake.yield()
        var reason = "closed"
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.write(session, to: outbound, wakes: wakes, channel: channel.channel) }
            group.addTask { await self.watch(channel.channel, number: number) }
            var session = session
            do throws(PeerStreamRefusal) {
                try await read(&inbound, splitter: &splitter, session: &session)
            } catch {
                reason = error.description
                context.metrics.peerStreamRefused(error.label)
                context.logger.warning(
                    "peer stream refused", metadata: ["peer": "\(peer)", "reason": "\(error.label)", "detail": "\(error.detail)"])
            }
            channel.channel.close(promise: nil)
            wake.finish()
            group.cancelAll()
        }
        detach(number, reason: reason)
    }

    /// Closes the connection, and keeps the link closed: the node is shutting down.
    func close() {
        let attached = state.withLockedValue { state in
            state.closed = true
            return state.attached
        }
        attached?.channel.close(promise: nil)
    }

    /// A connection attempt failed (the dialer's): counted, and logged the first time.
    func connectFailed(_ reason: String) {
        let first = state.withLockedValue { state in
            state.failures += 1
            return state.failures == 1
        }
        if first { context.logger.warning("peer unreachable", metadata: ["peer": "\(peer)", "error": "\(reason)"]) }
    }

    private func detach(_ number: UInt64, reason: String) {
        let orphaned = state.withLockedValue { state -> [PendingForward] in
            guard state.attached?.number == number else { return [] }
            state.attached = nil
            state.writingSince = nil
            state.failures += 1
            let dropped = state.outbox.count
            state.outbox.removeAll()
            if dropped > 0 { context.metrics.peerMessages(dropped, peer: peer, result: "dropped") }
            defer { state.forwards.removeAll() }
            return Array(state.forwards.values)
        }
        context.metrics.peerConnection(peer: peer, event: "closed")
        context.logger.debug("peer stream down", metadata: ["peer": "\(peer)", "connection": "\(number)", "reason": "\(reason)"])
        for pending in orphaned {
            pending.continuation.resume(
                returning: [Outcome](
                    repeating: .failure(.peerFailed("the connection to node \(peer) ended before it answered")), count: pending.count))
        }
    }

    // MARK: Reading

    private func read(
        _ inbound: inout NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator, splitter: inout PeerFrameSplitter,
        session: inout PeerSession
    ) async throws(PeerStreamRefusal) {
        while true {
            while let body = try splitter.next() {
                let (kind, payload) = try session.open(body)
                try await dispatch(kind, payload)
            }
            let buffer: ByteBuffer?
            do {
                buffer = try await inbound.next()
            } catch {
                return
            }
            guard let buffer else { return }
            let now = context.environment.monotonicMilliseconds()
            state.withLockedValue { $0.lastReceivedAt = now }
            splitter.append(buffer.readableBytesView)
        }
    }

    private func dispatch(_ kind: PeerFrame.Kind, _ payload: ArraySlice<UInt8>) async throws(PeerStreamRefusal) {
        switch kind {
        case .messages:
            try await context.inbound.receive(payload, from: peer)
        case .forward:
            let receivedAt = context.environment.monotonicMilliseconds()
            var reader = ByteReader(Array(payload))
            let number: UInt64
            let forwarded: [PeerWire.Forwarded]
            do {
                number = try reader.readUInt64()
                forwarded = try PeerWire.decodeCommands(reader.readRemaining())
            } catch {
                throw PeerStreamRefusal(.malformed, "unreadable forwarded commands from node \(peer): \(error)")
            }
            // Answered when done, while this connection reads on.
            Task {
                let outcomes = await context.inbound.outcomes(of: forwarded, receivedAtMilliseconds: receivedAt)
                var writer = ByteWriter()
                writer.write(number)
                writer.write(raw: PeerWire.encode(outcomes: outcomes))
                self.enqueue(.frame(.outcomes, writer.bytes))
            }
        case .outcomes:
            var reader = ByteReader(Array(payload))
            do {
                let number = try reader.readUInt64()
                finishForward(number, try PeerWire.decodeOutcomes(reader.readRemaining()))
            } catch {
                throw PeerStreamRefusal(.malformed, "unreadable outcomes from node \(peer): \(error)")
            }
        case .clock:
            let theirs = try PeerFrame.readClock(payload)
            let now = context.environment.wallClockMilliseconds()
            context.clockSkew.recordRequest(from: peer, sentAtMilliseconds: theirs, receivedAtMilliseconds: now)
            let skew = theirs - now
            guard abs(skew) <= PeerAuthenticator.maxClockSkewMilliseconds else {
                throw PeerStreamRefusal(
                    .clockSkew,
                    "node \(peer)'s clock is \(skew) ms from this one's, beyond \(PeerAuthenticator.maxClockSkewMilliseconds) ms",
                    skewMilliseconds: skew)
            }
        case .hello, .challenge, .proof, .welcome, .refused:
            preconditionFailure("PeerSession.open lets only sealed kinds through")
        }
    }

    private func enqueue(_ item: Outgoing) {
        state.withLockedValue { state in
            guard let attached = state.attached else { return }
            state.outbox.append(item)
            if state.outbox.count > Self.maxOutboxItems { state.outbox.removeFirst() }
            attached.wake.yield()
        }
    }

    // MARK: Writing

    private func write(
        _ session: PeerSession, to outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>, wakes: AsyncStream<Void>, channel: any Channel
    ) async {
        var session = session
        for await _ in wakes {
            while let frames = nextFrames() {
                let buffers = frames.map { ByteBuffer(bytes: session.seal($0.kind, payload: $0.payload)) }
                do {
                    try await outbound.write(contentsOf: buffers)
                } catch {
                    channel.close(promise: nil)
                    return
                }
                state.withLockedValue { $0.writingSince = nil }
            }
        }
    }

    /// What the writer sends next: Raft messages queued together become one `messages` frame.
    private func nextFrames() -> [(kind: PeerFrame.Kind, payload: [UInt8])]? {
        let now = context.environment.monotonicMilliseconds()
        return state.withLockedValue { state -> [(kind: PeerFrame.Kind, payload: [UInt8])]? in
            guard !state.outbox.isEmpty, state.attached != nil else { return nil }
            var items: [(kind: PeerFrame.Kind, payload: [UInt8])] = []
            var batch: [Message<RelayStateMachine>] = []
            var bytes = 0
            var sent = 0
            func closeBatch() {
                guard !batch.isEmpty else { return }
                sent += batch.count
                items.append((.messages, MessageCodec.encode(batch)))
                batch.removeAll()
                bytes = 0
            }
            while let item = state.outbox.first, items.count < Self.maxFramesPerWrite {
                state.outbox.removeFirst()
                switch item {
                case .message(let message):
                    batch.append(message)
                    bytes += Self.estimatedBytes(message)
                    if batch.count >= Self.maxBatchMessages || bytes >= Self.batchByteBudget { closeBatch() }
                case .frame(let kind, let payload):
                    closeBatch()
                    items.append((kind, payload))
                }
            }
            closeBatch()
            state.writingSince = now
            if sent > 0 { context.metrics.peerMessages(sent, peer: peer, result: "sent") }
            return items
        }
    }

    private static func estimatedBytes(_ message: Message<RelayStateMachine>) -> Int {
        guard case .append(_, _, let entries, _, _) = message.body else { return 64 }
        return entries.reduce(64) { total, entry in total + (entry.command.map(RelayStateMachine.replicationBytes(of:)) ?? 64) }
    }

    // MARK: Liveness

    /// Sends this node's clock every `clockIntervalMilliseconds`, and closes the connection when
    /// the peer has been silent, or has not read, for `silenceLimitMilliseconds`.
    private func watch(_ channel: any Channel, number: UInt64) async {
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(context.clockIntervalMilliseconds))
            let now = context.environment.monotonicMilliseconds()
            let problem = state.withLockedValue { state -> String? in
                guard state.attached?.number == number else { return "replaced" }
                if now - state.lastReceivedAt > context.silenceLimitMilliseconds {
                    return "nothing received from node \(peer) for \(now - state.lastReceivedAt) ms"
                }
                if let since = state.writingSince, now - since > context.silenceLimitMilliseconds {
                    return "node \(peer) has not read for \(now - since) ms"
                }
                return nil
            }
            if let problem {
                if problem != "replaced" {
                    context.metrics.peerStreamRefused("silent")
                    context.logger.warning("peer stream closed", metadata: ["peer": "\(peer)", "reason": "\(problem)"])
                }
                channel.close(promise: nil)
                return
            }
            enqueue(.frame(.clock, PeerFrame.clock(context.environment.wallClockMilliseconds())))
            let overdue = state.withLockedValue { state in state.forwards.filter { $0.value.deadline <= now }.map(\.key) }
            for number in overdue {
                finishForward(number, nil, reason: "node \(peer) did not answer within \(context.forwardTimeoutMilliseconds) ms")
            }
        }
    }
}
