import DequeModule
import GatewayCore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ServiceLifecycle

/// A UDP gateway (syslog, SNMP traps). A reader takes datagrams off the socket into a bounded
/// backlog as fast as they come; the gateway takes what the backlog holds in batches, each as
/// `GatewayPipeline.takeInLanes` does (one incident's events in order, incidents side by side),
/// and each event counts once it is durable. UDP cannot push back: a datagram that finds the
/// backlog full, the queue full or no leader is lost, and counted
/// (`pdrelay_gateway_messages_total`, outcomes `overflow`, `queue_full`, `unavailable`).
struct DatagramGatewayService: Service {
    let listener: GatewayListener
    let pipeline: GatewayPipeline
    let gate: ListenerGate
    let logger: Logger
    static let receiveBufferBytes = 4 * 1_024 * 1_024
    /// Datagrams waiting for the rules and the intake: a few seconds of a storm.
    static let maxBacklog = 65_536
    static let maxBatch = 1_024

    func run() async throws {
        let channel = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelOption(.socketOption(.so_rcvbuf), value: SocketOptionValue(Self.receiveBufferBytes))
            .channelOption(.maxMessagesPerRead, value: 16)
            .bind(host: listener.host, port: listener.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<AddressedEnvelope<ByteBuffer>, AddressedEnvelope<ByteBuffer>>(wrappingChannelSynchronously: channel)
                }
            }
        let port = channel.channel.localAddress?.port ?? listener.port
        logger.notice(
            "\(listener.gateway.rawValue) gateway listening",
            metadata: ["transport": "udp", "gateway_address": "\(listener.host):\(port)", "setting": "\(listener.setting)"])
        gate.opened()
        let backlog = NIOLockedValueBox(Deque<AddressedEnvelope<ByteBuffer>>())
        let (arrivals, arrived) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        try await withGracefulShutdownHandler {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    defer { arrived.finish() }
                    try await channel.executeThenClose { inbound, _ in
                        for try await envelope in inbound {
                            let kept = backlog.withLockedValue { backlog in
                                guard backlog.count < Self.maxBacklog else { return false }
                                backlog.append(envelope)
                                return true
                            }
                            if kept { arrived.yield() } else { pipeline.metrics.gateway(listener.gateway.rawValue, "overflow") }
                        }
                    }
                }
                let matcher = RuleMatcher(pipeline.rules, gateway: listener.gateway)
                for await _ in arrivals {
                    while true {
                        let batch = backlog.withLockedValue { backlog in
                            let count = min(Self.maxBatch, backlog.count)
                            defer { backlog.removeFirst(count) }
                            return Array(backlog.prefix(count))
                        }
                        if batch.isEmpty { break }
                        let events = batch.compactMap { envelope -> GatewayPipeline.Event? in
                            let sender = envelope.remoteAddress.ipAddress ?? "unknown"
                            guard let fields = pipeline.fields(Array(envelope.data.readableBytesView), sender: sender) else { return nil }
                            return pipeline.event(fields, matcher: matcher)
                        }
                        try await pipeline.takeInLanes(events, retryMilliseconds: nil)
                    }
                }
                try await group.waitForAll()
            }
        } onGracefulShutdown: {
            channel.channel.close(promise: nil)
        }
    }
}
