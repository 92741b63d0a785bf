import GatewayCore
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

/// A UDP gateway (syslog, SNMP traps). Datagrams are taken one at a time, each waiting until
/// its event is durable, so a sender's events keep their order; meanwhile the kernel's receive
/// buffer (raised to 4 MiB) holds the next ones. A datagram that meets a full queue or no
/// leader is lost, as UDP's are, and counted (`pdrelay_gateway_messages_total`).
struct DatagramGatewayService: Service {
    let listener: GatewayListener
    let pipeline: GatewayPipeline
    let gate: ListenerGate
    let logger: Logger
    static let receiveBufferBytes = 4 * 1_024 * 1_024

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
        let matcher = RuleMatcher(pipeline.rules, gateway: listener.gateway)
        try await withGracefulShutdownHandler {
            try await channel.executeThenClose { inbound, _ in
                for try await envelope in inbound {
                    let sender = envelope.remoteAddress.ipAddress ?? "unknown"
                    guard let fields = pipeline.fields(Array(envelope.data.readableBytesView), sender: sender) else { continue }
                    _ = await pipeline.process(fields, matcher: matcher)
                }
            }
        } onGracefulShutdown: {
            channel.channel.close(promise: nil)
        }
    }
}
