import AsyncHTTPClient
import ClusterCore
import DequeModule
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import RelayCore

/// Signed HTTP requests to peers over persistent HTTP/1.1 connections (AsyncHTTPClient's pool).
/// A value shared by the outboxes and the forwarder; it holds no state of its own.
struct PeerClient: Sendable {
    let client: HTTPClient
    let urls: [NodeID: String]
    let selfID: NodeID
    let signer: PeerAuthenticator
    let environment: NodeEnvironment

    /// A signed POST; the answer's body on 2xx, an error otherwise.
    func post(_ path: String, body: [UInt8], to peer: NodeID, timeoutMilliseconds: Int64) async throws -> [UInt8] {
        guard let base = urls[peer] else { throw PeerRequestFailure("no such peer \(peer)") }
        let timestamp = environment.wallClockMilliseconds()
        var request = HTTPClientRequest(url: base + path)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/octet-stream")
        request.headers.add(name: PeerAuthenticator.nodeHeader, value: String(selfID))
        request.headers.add(name: PeerAuthenticator.timestampHeader, value: String(timestamp))
        request.headers.add(
            name: PeerAuthenticator.signatureHeader,
            value: signer.signature(method: "POST", path: path, node: selfID, timestamp: timestamp, body: body))
        request.body = .bytes(ByteBuffer(bytes: body))
        let response = try await client.execute(request, timeout: .milliseconds(timeoutMilliseconds))
        let answer = try await response.body.collect(upTo: PeerWire.maxForwardBytes)
        guard (200..<300).contains(response.status.code) else {
            throw PeerRequestFailure("HTTP \(response.status.code): \(String(buffer: answer).prefix(200))")
        }
        return Array(answer.readableBytesView)
    }

    /// Sends a follower's client commands to the leader; one outcome per command.
    func forward(_ commands: [RelayCommand], to leader: NodeID, timeoutMilliseconds: Int64) async -> [Result<CommandResult, EngineError>] {
        let failure = { (reason: String) in
            [Result<CommandResult, EngineError>](repeating: .failure(.peerFailed(reason)), count: commands.count)
        }
        let answer: [UInt8]
        do {
            answer = try await post(
                PeerWire.forwardPath, body: PeerWire.encode(commands: commands), to: leader, timeoutMilliseconds: timeoutMilliseconds)
        } catch {
            return failure("forwarding to node \(leader) failed: \(error)")
        }
        guard let outcomes = try? PeerWire.decodeOutcomes(answer), outcomes.count == commands.count else {
            return failure("node \(leader) answered something unreadable")
        }
        return outcomes
    }
}

/// The client half of the peer links: one outbox per peer for protocol messages, a batcher for
/// forwarded client commands, and the status question a fresh node asks.
final class PeerTransport: Sendable {
    private let client: PeerClient
    private let links: [NodeID: PeerLink]
    private let batcher: ForwardBatcher

    init(configuration: RelayConfiguration, environment: NodeEnvironment, metrics: NodeMetrics, logger: Logger) throws {
        let members = try configuration.members
        var clientConfiguration = HTTPClient.Configuration(
            // A refused or unroutable peer must not hold its outbox for long: Raft resends.
            timeout: .init(connect: .milliseconds(configuration.heartbeatIntervalMilliseconds * 2)))
        clientConfiguration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 64)
        clientConfiguration.redirectConfiguration = .disallow
        clientConfiguration.tlsConfiguration = try PeerTLS.clientConfiguration(configuration)
        let client = PeerClient(
            client: HTTPClient(eventLoopGroupProvider: .singleton, configuration: clientConfiguration),
            urls: Dictionary(uniqueKeysWithValues: members.map { ($0.id, $0.url) }), selfID: configuration.nodeID,
            signer: PeerAuthenticator(secret: configuration.clusterSecret ?? "", members: Set(members.map(\.id))),
            environment: environment)
        self.client = client
        var links: [NodeID: PeerLink] = [:]
        for member in members where member.id != configuration.nodeID {
            links[member.id] = PeerLink(
                peer: member.id, client: client, requestTimeoutMilliseconds: max(2_000, 2 * configuration.electionTimeoutMilliseconds),
                metrics: metrics, logger: logger)
        }
        self.links = links
        let forwardTimeoutMilliseconds = configuration.leaderWaitMilliseconds
        batcher = ForwardBatcher { commands, leader in
            await client.forward(commands, to: leader, timeoutMilliseconds: forwardTimeoutMilliseconds)
        }
    }

    /// Queues messages for their peers; returns at once. Lost messages are resent by the protocol.
    func send(_ messages: [Message<RelayStateMachine>]) {
        guard !messages.isEmpty else { return }
        var byPeer: [NodeID: [Message<RelayStateMachine>]] = [:]
        for message in messages { byPeer[message.to, default: []].append(message) }
        for (peer, batch) in byPeer { links[peer]?.enqueue(batch) }
    }

    /// Hands a client command to the leader and returns the leader's answer. Concurrent
    /// commands travel together (`ForwardBatcher`).
    func forward(_ command: RelayCommand, to leader: NodeID) async -> Result<CommandResult, EngineError> {
        await batcher.forward(command, to: leader)
    }

    func status(of peer: NodeID) async -> PeerWire.Status? {
        guard let answer = try? await client.post(PeerWire.statusPath, body: [], to: peer, timeoutMilliseconds: 1_000) else { return nil }
        return try? PeerWire.Status(encoded: answer)
    }

    var peerIDs: [NodeID] { links.keys.sorted() }

    /// Waits (bounded) for the outboxes to empty: the last messages of a shutdown, such as a
    /// leadership handover, should leave before the process does.
    func flush(timeoutMilliseconds: Int64) async {
        let deadline = client.environment.monotonicMilliseconds() + timeoutMilliseconds
        while links.values.contains(where: { !$0.isIdle }) && client.environment.monotonicMilliseconds() < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    func shutdown() async throws {
        for link in links.values { link.close() }
        try await client.client.shutdown()
    }
}

struct PeerRequestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// One peer's outbox. A single request is in flight per peer, so messages arrive in order and
/// whatever queued meanwhile goes out as the next batch. The outbox is bounded: when a peer is
/// unreachable the oldest messages are dropped, which the protocol tolerates.
final class PeerLink: Sendable {
    static let maxOutboxMessages = 10_000
    static let maxBatchMessages = 1_024
    /// A batch stops growing past this many bytes of entries (a single message may exceed it).
    static let batchByteBudget = 4 * 1_024 * 1_024
    static let snapshotTimeoutMilliseconds: Int64 = 120_000

    private struct State {
        var outbox: Deque<Message<RelayStateMachine>> = []
        var sending = false
        var closed = false
        var failures = 0
    }

    let peer: NodeID
    private let client: PeerClient
    private let requestTimeoutMilliseconds: Int64
    private let metrics: NodeMetrics
    private let logger: Logger
    private let state = NIOLockedValueBox(State())

    init(peer: NodeID, client: PeerClient, requestTimeoutMilliseconds: Int64, metrics: NodeMetrics, logger: Logger) {
        self.peer = peer
        self.client = client
        self.requestTimeoutMilliseconds = requestTimeoutMilliseconds
        self.metrics = metrics
        self.logger = logger
    }

    /// Stops sending: the HTTP client is about to shut down.
    func close() { state.withLockedValue { $0.closed = true } }

    var isIdle: Bool { state.withLockedValue { $0.outbox.isEmpty && !$0.sending } }

    func enqueue(_ messages: [Message<RelayStateMachine>]) {
        let (start, dropped) = state.withLockedValue { state -> (Bool, Int) in
            // The leader repeats a snapshot every heartbeat until the follower answers; one
            // queued copy, the newest, is enough.
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
            do {
                // A snapshot may be hundreds of megabytes: give it time to cross a zone.
                let carriesSnapshot = batch.contains(where: Self.isSnapshot)
                _ = try await client.post(
                    PeerWire.messagesPath, body: MessageCodec.encode(batch), to: peer,
                    timeoutMilliseconds: carriesSnapshot ? Self.snapshotTimeoutMilliseconds : requestTimeoutMilliseconds)
                metrics.peerMessages(batch.count, peer: peer, result: "sent")
                let recovered = state.withLockedValue { state in
                    defer { state.failures = 0 }
                    return state.failures > 0
                }
                if recovered { logger.notice("peer reachable again", metadata: ["peer": "\(peer)"]) }
            } catch {
                metrics.peerMessages(batch.count, peer: peer, result: "failed")
                let failures = state.withLockedValue { state in
                    state.failures += 1
                    return state.failures
                }
                if failures == 1 { logger.warning("peer unreachable", metadata: ["peer": "\(peer)", "error": "\(error)"]) }
                // The messages are dropped: by the time the peer is back, newer ones say more.
                try? await Task.sleep(for: .milliseconds(min(20 * Int64(failures), 200)))
            }
        }
    }

    private func nextBatch() -> [Message<RelayStateMachine>]? {
        state.withLockedValue { state in
            guard !state.outbox.isEmpty, !state.closed else {
                state.sending = false
                return nil
            }
            var batch: [Message<RelayStateMachine>] = []
            var bytes = 0
            while let message = state.outbox.first, batch.count < Self.maxBatchMessages, batch.isEmpty || bytes < Self.batchByteBudget {
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
        switch message.body {
        case .append(_, _, let entries, _, _):
            return entries.reduce(64) { total, entry in
                if case .accept(let acceptance) = entry.command { return total + acceptance.body.count + 64 }
                return total + 64
            }
        case .installSnapshot: return batchByteBudget
        default: return 64
        }
    }
}
