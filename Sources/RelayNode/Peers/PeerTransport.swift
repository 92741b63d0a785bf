import AsyncHTTPClient
import ClusterCore
import DequeModule
import EngineCore
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
    let clockSkew: ClockSkewMonitor
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
        if let theirs = response.headers.first(name: PeerAuthenticator.timeHeader).flatMap({ Int64($0) }) {
            clockSkew.recordAnswer(
                from: .peer(peer), theirMilliseconds: theirs, sentAt: timestamp, receivedAt: environment.wallClockMilliseconds())
        }
        let answer = try await response.body.collect(upTo: PeerWire.maxForwardBytes)
        guard (200..<300).contains(response.status.code) else {
            throw PeerRequestFailure("HTTP \(response.status.code): \(String(buffer: answer).prefix(200))")
        }
        return Array(answer.readableBytesView)
    }

    /// Sends a follower's client commands to the leader; one outcome per command.
    func forward(_ commands: [RelayCommand], holdRemaining: [Int64?], to leader: NodeID, timeoutMilliseconds: Int64) async -> [Result<
        CommandResult, EngineError
    >] {
        let failure = { (reason: String) in
            [Result<CommandResult, EngineError>](repeating: .failure(.peerFailed(reason)), count: commands.count)
        }
        let answer: [UInt8]
        do {
            answer = try await post(
                PeerWire.forwardPath, body: PeerWire.encode(commands: commands, holdRemainingMilliseconds: holdRemaining), to: leader,
                timeoutMilliseconds: timeoutMilliseconds)
        } catch {
            return failure("forwarding to node \(leader) failed: \(error)")
        }
        let outcomes: [Result<CommandResult, EngineError>]
        do {
            outcomes = try PeerWire.decodeOutcomes(answer)
        } catch {
            return failure("node \(leader) answered something unreadable: \(error)")
        }
        guard outcomes.count == commands.count else {
            return failure("node \(leader) answered \(outcomes.count) outcomes for \(commands.count) commands")
        }
        // The leader's own failure keeps its meaning here, and says whose store it was.
        return outcomes.map { outcome in
            outcome.mapError { error in
                if case .storeFailed(let reason) = error { return .storeFailed("on node \(leader), the leader: \(reason)") }
                return error
            }
        }
    }
}

/// The client half of the peer links: two lanes per peer for protocol messages (`PeerLink`), a
/// batcher for forwarded client commands, and the status question a fresh node asks.
final class PeerTransport: Sendable {
    private let client: PeerClient
    private let links: [NodeID: PeerLink]
    private let batcher: ForwardBatcher

    init(
        configuration: RelayConfiguration, environment: NodeEnvironment, transfers: SnapshotTransfers, clockSkew: ClockSkewMonitor,
        metrics: NodeMetrics, logger: Logger
    ) throws {
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
            signer: PeerAuthenticator(secrets: configuration.clusterSecrets, members: Set(members.map(\.id))),
            clockSkew: clockSkew, environment: environment)
        self.client = client
        var links: [NodeID: PeerLink] = [:]
        let encodings = SnapshotEncodings(newID: environment.seed)
        let requestTimeoutMilliseconds = max(2_000, 2 * configuration.electionTimeoutMilliseconds)
        for member in members where member.id != configuration.nodeID {
            let snapshots = SnapshotSender(
                peer: member.id, client: client, chunkBytes: configuration.snapshotChunkBytes, encodings: encodings,
                transfers: transfers, logger: logger)
            links[member.id] = PeerLink(
                control: PeerOutbox(
                    peer: member.id, lane: "control", client: client, requestTimeoutMilliseconds: requestTimeoutMilliseconds,
                    snapshots: nil, metrics: metrics, logger: logger),
                bulk: PeerOutbox(
                    peer: member.id, lane: "bulk", client: client, requestTimeoutMilliseconds: requestTimeoutMilliseconds,
                    snapshots: snapshots, metrics: metrics, logger: logger))
        }
        self.links = links
        let forwardTimeoutMilliseconds = configuration.leaderWaitMilliseconds
        batcher = ForwardBatcher(monotonicMilliseconds: environment.monotonicMilliseconds) { commands, holdRemaining, leader in
            await client.forward(commands, holdRemaining: holdRemaining, to: leader, timeoutMilliseconds: forwardTimeoutMilliseconds)
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
    func forward(_ command: RelayCommand, holdDeadlineMilliseconds: Int64?, to leader: NodeID) async -> Result<
        CommandResult, EngineError
    > {
        await batcher.forward(command, holdDeadlineMilliseconds: holdDeadlineMilliseconds, to: leader)
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
