import HummingbirdCore
import Logging
import NIOCore
import RelayReplication

/// The peer listener's connections: a peer stream when the first bytes are
/// `PeerFrame.preface`, HTTP otherwise (status and snapshot chunks, `PeerRoutes`). One port
/// serves both, so the peer URLs, proxies and firewall rules stay as they were. With peer TLS,
/// Hummingbird's `TLSChannel` wraps this, and the first bytes looked at are the decrypted ones.
struct PeerListenerChannel: ServerChildChannel {
    enum Negotiated: Sendable {
        case http(HTTP1Channel.Value)
        case stream(NIOAsyncChannel<ByteBuffer, ByteBuffer>)
    }

    /// The connection, and what it turns out to be once its first bytes arrive: NIO registers
    /// (and reads) a connection only after `setup` returns, so the decision is awaited in
    /// `handle`, as Hummingbird's HTTP/2 upgrade awaits ALPN.
    struct Value: ServerChildChannelValue {
        let channel: any Channel
        let negotiated: EventLoopFuture<Negotiated>
    }

    let http: HTTP1Channel
    let accept: @Sendable (NIOAsyncChannel<ByteBuffer, ByteBuffer>) async -> Void

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            let decided = channel.eventLoop.makePromise(of: Bool.self)
            try channel.pipeline.syncOperations.addHandler(PeerPrefaceSniffer(decided: decided), name: PeerPrefaceSniffer.name)
            let http = http
            let negotiated = decided.futureResult.flatMap { isStream -> EventLoopFuture<Negotiated> in
                let value: EventLoopFuture<Negotiated> =
                    isStream
                    ? channel.eventLoop.makeCompletedFuture {
                        try channel.syncOptions?.setOption(.socketOption(.tcp_nodelay), value: 1)
                        return .stream(try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel))
                    }
                    : http.setup(channel: channel, logger: logger).map { .http($0) }
                // Removing the sniffer passes on what it held, to the handlers just added.
                return value.flatMap { value in channel.pipeline.removeHandler(name: PeerPrefaceSniffer.name).map { value } }
            }
            return Value(channel: channel, negotiated: negotiated)
        }
    }

    func handle(value: Value, logger: Logger) async {
        do {
            switch try await value.negotiated.get() {
            case .http(let http): await self.http.handle(value: http, logger: logger)
            case .stream(let stream): await accept(stream)
            }
        } catch {
            logger.debug("peer connection closed before it said what it is", metadata: ["error": "\(error)"])
            try? await value.channel.close()
        }
    }
}

/// Holds a connection's first bytes until they say whether it is a peer stream, then passes
/// them on unchanged when it is removed.
final class PeerPrefaceSniffer: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    static let name = "pdrelay-peer-preface"
    /// The bytes that tell; the version byte after them is the stream's to check.
    private static let magic = PeerFrame.preface.prefix(4)

    private var held: ByteBuffer?
    private var decided: EventLoopPromise<Bool>?

    init(decided: EventLoopPromise<Bool>) { self.decided = decided }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        if held == nil { held = incoming } else { held!.writeBuffer(&incoming) }
        guard let decided, let held else { return }
        let seen = held.readableBytesView.prefix(Self.magic.count)
        if !Self.magic.starts(with: seen) {
            self.decided = nil
            decided.succeed(false)
        } else if seen.count == Self.magic.count {
            self.decided = nil
            decided.succeed(true)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {}

    func handlerRemoved(context: ChannelHandlerContext) {
        if let held, held.readableBytes > 0 {
            context.fireChannelRead(wrapInboundOut(held))
            context.fireChannelReadComplete()
        }
        held = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        decided?.fail(ChannelError.eof)
        decided = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        decided?.fail(error)
        decided = nil
        context.close(promise: nil)
    }
}
