import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A TCP proxy on one peer link (node i → node j) that can cut it: while `blocked`, existing
/// connections are closed and new ones are closed as soon as they are accepted, as a network
/// partition would look to the nodes (requests fail, nothing arrives).
public final class FaultProxy: Sendable {
    private let channel: any Channel
    private let state: NIOLockedValueBox<State>

    private struct State {
        var blocked = false
        var connections: [ObjectIdentifier: any Channel] = [:]
    }

    public static func start(listenPort: Int, targetPort: Int) async throws -> FaultProxy {
        let state = NIOLockedValueBox(State())
        let group = MultiThreadedEventLoopGroup.singleton
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { inbound in
                if state.withLockedValue({ $0.blocked }) { return inbound.close() }
                return ClientBootstrap(group: inbound.eventLoop)
                    .connect(host: "127.0.0.1", port: targetPort)
                    .flatMap { outbound in
                        let (toTarget, toClient) = GlueHandler.pair()
                        state.withLockedValue {
                            $0.connections[ObjectIdentifier(inbound)] = inbound
                            $0.connections[ObjectIdentifier(outbound)] = outbound
                        }
                        for side in [inbound, outbound] {
                            side.closeFuture.whenComplete { _ in
                                state.withLockedValue { _ = $0.connections.removeValue(forKey: ObjectIdentifier(side)) }
                            }
                        }
                        return inbound.pipeline.addHandler(toTarget).flatMap { outbound.pipeline.addHandler(toClient) }
                    }
                    .flatMapError { _ in inbound.close() }
            }
            .bind(host: "127.0.0.1", port: listenPort).get()
        return FaultProxy(channel: channel, state: state)
    }

    private init(channel: any Channel, state: NIOLockedValueBox<State>) {
        self.channel = channel
        self.state = state
    }

    public var blocked: Bool {
        get { state.withLockedValue { $0.blocked } }
        set {
            let open = state.withLockedValue { state in
                state.blocked = newValue
                return newValue ? Array(state.connections.values) : []
            }
            for connection in open { connection.close(promise: nil) }
        }
    }

    public func stop() async {
        blocked = true
        try? await channel.close()
    }
}

/// Copies bytes between two channels; closing either closes both.
private final class GlueHandler: ChannelDuplexHandler, @unchecked Sendable {
    typealias InboundIn = NIOAny
    typealias OutboundIn = NIOAny
    typealias OutboundOut = NIOAny

    private var partner: GlueHandler?
    private var context: ChannelHandlerContext?

    static func pair() -> (GlueHandler, GlueHandler) {
        let first = GlueHandler()
        let second = GlueHandler()
        first.partner = second
        second.partner = first
        return (first, second)
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        partner = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        partner?.write(data)
    }

    func channelReadComplete(context: ChannelHandlerContext) { partner?.flush() }

    func channelInactive(context: ChannelHandlerContext) { partner?.close() }

    func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }

    // Both channels of a pair live on the same event loop (the outbound one is connected from
    // the inbound one's loop), so the partner's context is safe to use directly.
    private func write(_ data: NIOAny) { context?.write(data, promise: nil) }
    private func flush() { context?.flush() }
    private func close() { context?.close(promise: nil) }
}
