import AsyncHTTPClient
import ClusterCore
import DequeModule
import EngineCore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import RelayCore
import RelayReplication

/// Signed HTTP requests to peers over persistent HTTP/1.1 connections (AsyncHTTPClient's pool):
/// snapshot chunks and the status question, which are not on the data path. A value shared by
/// the snapshot senders; it holds no state of its own.
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
        let answer = try await response.body.collect(upTo: PeerWire.maxAnswerBytes)
        guard (200..<300).contains(response.status.code) else {
            throw PeerRequestFailure("HTTP \(response.status.code): \(String(buffer: answer).prefix(200))")
        }
        return Array(answer.readableBytesView)
    }
}

/// The node's links to its peers: a `PeerStream` per peer for the data path (Raft messages and
/// forwarded client commands), a `SnapshotLane` per peer for snapshots, and the HTTP client for
/// the status question a fresh node asks. Of each pair of nodes, the lower id dials and the
/// other accepts (`accept`, from the peer listener), so each pair shares one connection.
final class PeerTransport: Sendable {
    /// The dialer's wait between attempts doubles from the first to the last.
    static let firstRedialMilliseconds: Int64 = 50
    static let lastRedialMilliseconds: Int64 = 1_000

    private let client: PeerClient
    private let streams: [NodeID: PeerStream]
    private let snapshots: [NodeID: SnapshotLane]
    private let addresses: [NodeID: (host: String, port: Int)]
    private let handshake: PeerHandshake.Settings
    private let tls: NIOSSLContext?
    private let batcher: ForwardBatcher
    private let clockSkew: ClockSkewMonitor
    private let metrics: NodeMetrics
    private let logger: Logger
    /// A connection that has not finished its handshake by then is closed (and one to the peer
    /// listener that has not said what it is).
    let handshakeTimeoutMilliseconds: Int64
    private let dialers = NIOLockedValueBox<[Task<Void, Never>]>([])
    private let refusalLog = NIOLockedValueBox(LogThrottle<String>(intervalMilliseconds: 10_000))

    init(
        configuration: RelayConfiguration, engine: RelayEngine, environment: NodeEnvironment, transfers: SnapshotTransfers,
        clockSkew: ClockSkewMonitor, metrics: NodeMetrics, logger: Logger
    ) throws {
        let members = try configuration.members
        var clientConfiguration = HTTPClient.Configuration(
            // A refused or unroutable peer must not hold a request for long: Raft resends.
            timeout: .init(connect: .milliseconds(configuration.heartbeatIntervalMilliseconds * 2)))
        clientConfiguration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 8)
        clientConfiguration.redirectConfiguration = .disallow
        clientConfiguration.tlsConfiguration = try PeerTLS.clientConfiguration(configuration)
        clientConfiguration.tracing.tracer = nil
        let client = PeerClient(
            client: HTTPClient(eventLoopGroupProvider: .singleton, configuration: clientConfiguration),
            urls: Dictionary(uniqueKeysWithValues: members.map { ($0.id, $0.url) }), selfID: configuration.nodeID,
            signer: PeerAuthenticator(secrets: configuration.clusterSecrets, members: Set(members.map(\.id))),
            clockSkew: clockSkew, environment: environment)
        self.client = client
        let silenceLimitMilliseconds = max(2_000, 2 * configuration.electionTimeoutMilliseconds)
        let context = PeerStreamContext(
            inbound: PeerInbound(
                engine: engine, selfID: configuration.nodeID, limits: try configuration.stateMachineLimits),
            clockSkew: clockSkew, metrics: metrics, environment: environment, logger: logger,
            silenceLimitMilliseconds: silenceLimitMilliseconds,
            clockIntervalMilliseconds: min(500, configuration.heartbeatIntervalMilliseconds * 2),
            forwardTimeoutMilliseconds: configuration.leaderWaitMilliseconds)
        var streams: [NodeID: PeerStream] = [:]
        var snapshots: [NodeID: SnapshotLane] = [:]
        var addresses: [NodeID: (host: String, port: Int)] = [:]
        let encodings = SnapshotEncodings(newID: environment.seed)
        for member in members where member.id != configuration.nodeID {
            streams[member.id] = PeerStream(peer: member.id, context: context)
            snapshots[member.id] = SnapshotLane(
                sender: SnapshotSender(
                    peer: member.id, client: client, chunkBytes: configuration.snapshotChunkBytes, encodings: encodings,
                    transfers: transfers, logger: logger))
            addresses[member.id] = try member.address
        }
        self.streams = streams
        self.snapshots = snapshots
        self.addresses = addresses
        handshake = PeerHandshake.Settings(
            selfID: configuration.nodeID, members: Set(members.map(\.id)), secrets: configuration.clusterSecrets,
            maxClockSkewMilliseconds: PeerAuthenticator.maxClockSkewMilliseconds)
        tls = try PeerTLS.clientConfiguration(configuration).map { try NIOSSLContext(configuration: $0) }
        handshakeTimeoutMilliseconds = silenceLimitMilliseconds
        self.clockSkew = clockSkew
        self.metrics = metrics
        self.logger = logger
        let byPeer = streams
        batcher = ForwardBatcher(monotonicMilliseconds: environment.monotonicMilliseconds) { commands, holdRemaining, leader in
            guard let stream = byPeer[leader] else {
                return commands.map { _ in .failure(.peerFailed("node \(leader) is not a peer")) }
            }
            return await stream.forward(commands, holdRemainingMilliseconds: holdRemaining)
        }
    }

    /// Starts dialing the peers with higher ids; each dialer redials until `shutdown`.
    func start() {
        let tasks = streams.filter { $0.key > handshake.selfID }.map { peer, stream in Task { await self.dial(peer, stream) } }
        dialers.withLockedValue { $0 += tasks }
    }

    /// Queues messages for their peers; returns at once. Lost messages are resent by the protocol.
    func send(_ messages: [Message<RelayStateMachine>]) {
        guard !messages.isEmpty else { return }
        var byPeer: [NodeID: [Message<RelayStateMachine>]] = [:]
        for message in messages {
            if case .installSnapshot = message.body {
                snapshots[message.to]?.send(message)
            } else {
                byPeer[message.to, default: []].append(message)
            }
        }
        for (peer, batch) in byPeer { streams[peer]?.send(batch) }
    }

    /// Hands a client command to the leader and returns the leader's answer. Concurrent
    /// commands travel together (`ForwardBatcher`).
    func forward(_ command: RelayCommand, holdDeadlineMilliseconds: Int64?, to leader: NodeID) async -> Result<
        CommandResult, EngineError
    > {
        await batcher.forward(command, holdDeadlineMilliseconds: holdDeadlineMilliseconds, to: leader)
    }

    /// A peer stream the listener accepted.
    func accept(_ channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>) async {
        await serve(channel, role: .listener)
    }

    func status(of peer: NodeID) async -> PeerWire.Status? {
        guard let answer = try? await client.post(PeerWire.statusPath, body: [], to: peer, timeoutMilliseconds: 1_000) else { return nil }
        return try? PeerWire.Status(encoded: answer)
    }

    var peerIDs: [NodeID] { streams.keys.sorted() }

    /// Waits (bounded) for the outboxes to empty: the last messages of a shutdown, such as a
    /// leadership handover, should leave before the process does.
    func flush(timeoutMilliseconds: Int64) async {
        let deadline = client.environment.monotonicMilliseconds() + timeoutMilliseconds
        while streams.values.contains(where: { $0.isConnected && !$0.isIdle }) && client.environment.monotonicMilliseconds() < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    func shutdown() async throws {
        for dialer in dialers.withLockedValue({ $0 }) { dialer.cancel() }
        for stream in streams.values { stream.close() }
        for lane in snapshots.values { lane.close() }
        try await client.client.shutdown()
    }

    private func dial(_ peer: NodeID, _ stream: PeerStream) async {
        guard let address = addresses[peer] else { return }
        var wait = Self.firstRedialMilliseconds
        while !Task.isCancelled {
            let started = client.environment.monotonicMilliseconds()
            do {
                let tls = tls
                let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                    .connectTimeout(.milliseconds(handshakeTimeoutMilliseconds))
                    .channelOption(.socketOption(.tcp_nodelay), value: 1)
                    .connect(host: address.host, port: address.port) { channel in
                        channel.eventLoop.makeCompletedFuture {
                            if let tls {
                                try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: tls, serverHostname: nil))
                            }
                            return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                        }
                    }
                await serve(channel, role: .dialer(peer: peer))
            } catch {
                stream.connectFailed("\(error)")
            }
            // A connection that lived a while starts the waits over.
            let lived = client.environment.monotonicMilliseconds() - started
            wait = lived > Self.lastRedialMilliseconds ? Self.firstRedialMilliseconds : min(wait * 2, Self.lastRedialMilliseconds)
            try? await Task.sleep(for: .milliseconds(wait))
        }
    }

    /// Authenticates a connection (either side), then runs it as its peer's stream.
    private func serve(_ channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>, role: PeerHandshake.Role) async {
        let timeout = channel.channel.eventLoop.scheduleTask(in: .milliseconds(handshakeTimeoutMilliseconds)) {
            channel.channel.close(promise: nil)
        }
        defer { timeout.cancel() }
        do {
            try await channel.executeThenClose { inbound, outbound in
                var iterator = inbound.makeAsyncIterator()
                var splitter = PeerFrameSplitter(expectingPreface: role == .listener)
                var handshake = PeerHandshake(
                    role: role, settings: handshake, nonce: Self.nonce(), wallClockMilliseconds: client.environment.wallClockMilliseconds())
                if case .dialer = role { try await outbound.write(ByteBuffer(bytes: handshake.opening())) }
                var skewRecorded = false
                while true {
                    guard let body = try splitter.next() else {
                        // Closed or reset mid-handshake: nothing to refuse, the dialer tries again.
                        guard let buffer = try await iterator.next() else { return }
                        splitter.append(buffer.readableBytesView)
                        continue
                    }
                    let step = handshake.receive(body, wallClockMilliseconds: client.environment.wallClockMilliseconds())
                    if !skewRecorded, let skew = handshake.measuredSkew {
                        skewRecorded = true
                        clockSkew.record(.peer(skew.peer), skewMilliseconds: skew.milliseconds)
                    }
                    switch step {
                    case .send(let bytes):
                        try await outbound.write(ByteBuffer(bytes: bytes))
                    case .refused(let refusal, let bytes):
                        if let bytes { try? await outbound.write(ByteBuffer(bytes: bytes)) }
                        throw refusal
                    case .established(let session, let peer, let bytes):
                        if let bytes { try await outbound.write(ByteBuffer(bytes: bytes)) }
                        timeout.cancel()
                        guard let stream = streams[peer] else { return }
                        await stream.run(channel, session: session, inbound: &iterator, splitter: &splitter, outbound: outbound)
                        return
                    }
                }
            }
        } catch let refusal as PeerStreamRefusal {
            metrics.peerStreamRefused(refusal.label)
            // A refusal for skew is the clock watch's to report, by name and rate-limited.
            guard refusal.reason != .clockSkew else { return }
            let now = client.environment.monotonicMilliseconds()
            if refusalLog.withLockedValue({ $0.allows(refusal.label, now: now) }) {
                logger.warning("peer connection refused", metadata: ["reason": "\(refusal.label)", "detail": "\(refusal.detail)"])
            }
        } catch {
            logger.debug("peer connection ended during its handshake", metadata: ["error": "\(error)"])
        }
    }

    /// Fresh for every handshake, from the system's cryptographic generator.
    private static func nonce() -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<PeerHandshake.nonceBytes).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
    }
}

struct PeerRequestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
