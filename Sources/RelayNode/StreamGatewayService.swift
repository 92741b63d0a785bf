import GatewayCore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ServiceLifecycle

/// A TCP gateway (syslog over RFC 6587, raw lines). Each connection's messages are taken in
/// order, each once durable. When the queue is full or no leader is known the connection stops
/// reading and retries the same message every second: TCP's own flow control then slows the
/// sender, and nothing it sent is dropped.
struct StreamGatewayService: Service {
    let listener: GatewayListener
    let pipeline: GatewayPipeline
    let maxMessageBytes: Int
    let gate: ListenerGate
    let logger: Logger
    /// Connections at once; one more is closed on arrival (and logged), so a storm of
    /// connections cannot exhaust descriptors the node needs for its peers and store.
    static let maxConnections = 512
    static let retryMilliseconds: Int64 = 1_000

    func run() async throws {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: listener.host, port: listener.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        let port = server.channel.localAddress?.port ?? listener.port
        logger.notice(
            "\(listener.gateway.rawValue) gateway listening",
            metadata: ["transport": "tcp", "gateway_address": "\(listener.host):\(port)", "setting": "\(listener.setting)"])
        gate.opened()
        let open = NIOLockedValueBox(0)
        try await withGracefulShutdownHandler {
            try await withThrowingDiscardingTaskGroup { group in
                try await server.executeThenClose { connections in
                    for try await connection in connections {
                        let admitted = open.withLockedValue { count in
                            guard count < Self.maxConnections else { return false }
                            count += 1
                            return true
                        }
                        guard admitted else {
                            logger.warning(
                                "too many gateway connections; closing a new one", metadata: ["gateway": "\(listener.gateway.rawValue)"])
                            try? await connection.channel.close()
                            continue
                        }
                        group.addTask {
                            await serve(connection)
                            open.withLockedValue { $0 -= 1 }
                        }
                    }
                }
            }
        } onGracefulShutdown: {
            server.channel.close(promise: nil)
        }
    }

    private func serve(_ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>) async {
        let sender = connection.channel.remoteAddress?.ipAddress ?? "unknown"
        let matcher = RuleMatcher(pipeline.rules, gateway: listener.gateway)
        var framer = StreamFramer(maxMessageBytes: maxMessageBytes, newlineOnly: listener.gateway == .lines)
        await withGracefulShutdownHandler {
            do {
                try await connection.executeThenClose { inbound, _ in
                    for try await buffer in inbound {
                        try await take(framer.feed(buffer.readableBytesView), sender: sender, matcher: matcher)
                    }
                    try await take(framer.finish(), sender: sender, matcher: matcher)
                }
            } catch {
                // A reset by the sender, or a shutdown while a message waited to be retried: what
                // was taken is durable, what was not was never acknowledged to the sender (TCP
                // acknowledges bytes, not events), and a syslog sender sends it again.
                logger.debug(
                    "gateway connection ended",
                    metadata: ["gateway": "\(listener.gateway.rawValue)", "sender": "\(sender)", "reason": "\(error)"])
            }
        } onGracefulShutdown: {
            connection.channel.close(promise: nil)
        }
    }

    /// One read's messages, all taken (`GatewayPipeline.takeInLanes`) before the next read.
    /// Throws only when the task is cancelled while it waits to retry.
    private func take(_ items: [StreamFramer.Item], sender: String, matcher: RuleMatcher) async throws {
        var events: [GatewayPipeline.Event] = []
        for item in items {
            switch item {
            case .malformed(let error):
                pipeline.malformed(error, sender: sender)
            case .message(let bytes):
                if let fields = pipeline.fields(bytes, sender: sender), let event = pipeline.event(fields, matcher: matcher) {
                    events.append(event)
                }
            }
        }
        try await pipeline.takeInLanes(events, retryMilliseconds: Self.retryMilliseconds)
    }
}
