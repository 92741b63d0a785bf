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
    /// A connection that says nothing (or only half-closes) for this long is closed: otherwise
    /// it would be held forever, and hold up a graceful shutdown.
    let prefaceTimeoutMilliseconds: Int64
    let accept: @Sendable (NIOAsyncChannel<ByteBuffer, ByteBuffer>) async -> Void

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            let decided = channel.eventLoop.makePromise(of: Bool.self)
            try channel.pipeline.syncOperations.addHandler(
                PeerPrefaceSniffer(decided: decided, timeout: .milliseconds(prefaceTimeoutMilliseconds)), name: PeerPrefaceSniffer.name)
            let http = http
            let negotiated = decided.futureResult.flatMap { isStream -> EventLoopFuture<Negotiated> in
                let value: EventLoopFuture<Negotiated> =
                    isStream
                    ? channel.eventLoop.makeCompletedFuture {
                        try channel.syncOptions?.setOption(.socketOption(.tcp_nodelay), value: 1)
                        return .stream(try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel))
                    }
                    : http.setup(channel: channel, logger: logger).map { .http($0) }
                // Removing the sniffer passes on what it held, to the handlers just added. A removal
                // that fails (the connection closed meanwhile) still hands the wrapped channel to
                // `handle`, which runs and closes it: NIO traps on an async channel dropped open.
                return value.flatMap { value in
                    channel.pipeline.removeHandler(name: PeerPrefaceSniffer.name).flatMapError { _ in
                        channel.eventLoop.makeSucceededVoidFuture()
                    }
                    .map { value }
                }
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
/// them on unchanged when it is removed. A connection that ends, half-closes or stays silent
/// before that fails the decision and is closed.
final class PeerPrefaceSniffer: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    static let name = "pdrelay-peer-preface"
    /// The bytes that tell; the version byte after them is the stream's to check.
    private static let magic = PeerFrame.preface.prefix(4)

    struct Undecided: Error, CustomStringConvertible {
        let description: String
    }

    private var held: ByteBuffer?
    private var decided: EventLoopPromise<Bool>?
    private let timeout: TimeAmount
    private var timer: Scheduled<Void>?

    init(decided: EventLoopPromise<Bool>, timeout: TimeAmount) {
        precondition(timeout > .zero, "a connection's first bytes have a deadline")
        self.decided = decided
        self.timeout = timeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(in: timeout) {
            let (sniffer, context) = loopBound.value
            sniffer.giveUp(context: context, Undecided(description: "nothing said within \(sniffer.timeout)"))
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        if held == nil { held = incoming } else { held!.writeBuffer(&incoming) }
        guard decided != nil, let held else { return }
        let seen = held.readableBytesView.prefix(Self.magic.count)
        if !Self.magic.starts(with: seen) {
            decide(false)
        } else if seen.count == Self.magic.count {
            decide(true)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {}

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        if let held, held.readableBytes > 0 {
            context.fireChannelRead(wrapInboundOut(held))
            context.fireChannelReadComplete()
        }
        held = nil
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // The listener allows half-closure: a client that shuts its side before it says what it
        // is would otherwise wait here for ever.
        if case .inputClosed = event as? ChannelEvent, decided != nil {
            giveUp(context: context, Undecided(description: "closed before its first bytes"))
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        decided?.fail(ChannelError.eof)
        decided = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        timer?.cancel()
        decided?.fail(error)
        decided = nil
        context.close(promise: nil)
    }

    private func decide(_ isStream: Bool) {
        timer?.cancel()
        timer = nil
        let decided = decided
        self.decided = nil
        decided?.succeed(isStream)
    }

    private func giveUp(context: ChannelHandlerContext, _ error: any Error) {
        guard let decided else { return }
        self.decided = nil
        decided.fail(error)
        context.close(promise: nil)
    }
}
