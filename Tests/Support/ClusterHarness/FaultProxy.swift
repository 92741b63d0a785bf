import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A TCP proxy on one peer link (node i → node j) that can cut it, or make it a slow link
/// between zones. While `blocked`, existing connections are closed and new ones are closed as
/// soon as they are accepted, as a network partition would look to the nodes (requests fail,
/// nothing arrives). `LinkConditions` add latency with jitter, a bandwidth limit and connection
/// resets; the kernel's netem is not available on these machines.
public final class FaultProxy: Sendable {
    /// How the link behaves, in each direction.
    public struct LinkConditions: Sendable, Equatable {
        /// Added to every chunk of bytes, each way: half the round trip.
        public var oneWayDelayMilliseconds: Int64
        /// Up to this much more, drawn per chunk; bytes still arrive in order.
        public var jitterMilliseconds: Int64
        /// Bytes per second each way; 0 for unlimited.
        public var bytesPerSecond: Int64
        /// Share of connections that are reset (closed) at a random moment within their first
        /// `resetWithinMilliseconds`.
        public var resetShare: Double
        public var resetWithinMilliseconds: Int64

        public init(
            oneWayDelayMilliseconds: Int64 = 0, jitterMilliseconds: Int64 = 0, bytesPerSecond: Int64 = 0, resetShare: Double = 0,
            resetWithinMilliseconds: Int64 = 5_000
        ) {
            precondition(oneWayDelayMilliseconds >= 0 && jitterMilliseconds >= 0 && bytesPerSecond >= 0, "link conditions are not negative")
            precondition((0...1).contains(resetShare) && resetWithinMilliseconds > 0, "a reset share is within 0...1")
            self.oneWayDelayMilliseconds = oneWayDelayMilliseconds
            self.jitterMilliseconds = jitterMilliseconds
            self.bytesPerSecond = bytesPerSecond
            self.resetShare = resetShare
            self.resetWithinMilliseconds = resetWithinMilliseconds
        }

        public static let perfect = LinkConditions()
    }

    private let channel: any Channel
    private let state: NIOLockedValueBox<State>

    /// Which side's bytes the proxy stops reading while `stalled`.
    public enum Stall: Sendable, Equatable {
        case none
        /// The connecting node's: its writes back up, as to a peer that stopped reading.
        case fromClient
        /// Both sides': nothing crosses and nothing closes (a side's close is not passed on), as
        /// on a link that drops every packet, where each end's connection is half-open.
        case bothWays
    }

    private struct State {
        var blocked = false
        var stall = Stall.none
        /// Per connection pair: the client-side channel, then the target-side one.
        var pairs: [ObjectIdentifier: (client: any Channel, target: any Channel)] = [:]
        var conditions = LinkConditions.perfect
        var resets = 0
        var connections: [ObjectIdentifier: any Channel] = [:]
    }

    public static func start(listenPort: Int, targetPort: Int, conditions: LinkConditions = .perfect) async throws -> FaultProxy {
        let state = NIOLockedValueBox(State(conditions: conditions))
        let group = MultiThreadedEventLoopGroup.singleton
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { inbound in
                if state.withLockedValue({ $0.blocked }) { return inbound.close() }
                return ClientBootstrap(group: inbound.eventLoop)
                    .connect(host: "127.0.0.1", port: targetPort)
                    .flatMap { outbound in
                        let conditions = state.withLockedValue { $0.conditions }
                        let (toTarget, toClient) = GlueHandler.pair(conditions: conditions) {
                            state.withLockedValue { $0.stall == .bothWays }
                        }
                        let stall = state.withLockedValue {
                            $0.connections[ObjectIdentifier(inbound)] = inbound
                            $0.connections[ObjectIdentifier(outbound)] = outbound
                            $0.pairs[ObjectIdentifier(inbound)] = (inbound, outbound)
                            return $0.stall
                        }
                        if Double.random(in: 0..<1) < conditions.resetShare {
                            let after = Int64.random(in: 0..<conditions.resetWithinMilliseconds)
                            inbound.eventLoop.scheduleTask(in: .milliseconds(after)) {
                                state.withLockedValue { $0.resets += 1 }
                                inbound.close(promise: nil)
                            }
                        }
                        for side in [inbound, outbound] {
                            side.closeFuture.whenComplete { _ in
                                state.withLockedValue {
                                    _ = $0.connections.removeValue(forKey: ObjectIdentifier(side))
                                    _ = $0.pairs.removeValue(forKey: ObjectIdentifier(side))
                                }
                            }
                        }
                        return inbound.pipeline.addHandler(toTarget).flatMap { outbound.pipeline.addHandler(toClient) }.map {
                            if stall != .none { Self.apply(stall, client: inbound, target: outbound) }
                        }
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

    /// Stops reading (and so forwarding) one side's bytes or both, on open connections and new
    /// ones, without closing anything; `.none` reads again.
    public var stalled: Stall {
        get { state.withLockedValue { $0.stall } }
        set {
            let pairs = state.withLockedValue { state in
                state.stall = newValue
                return Array(state.pairs.values)
            }
            for pair in pairs {
                // What a black hole kept open on one side only is closed once bytes flow again.
                if newValue != .bothWays && !(pair.client.isActive && pair.target.isActive) {
                    pair.client.close(promise: nil)
                    pair.target.close(promise: nil)
                } else {
                    Self.apply(newValue, client: pair.client, target: pair.target)
                }
            }
        }
    }

    private static func apply(_ stall: Stall, client: any Channel, target: any Channel) {
        client.setOption(.autoRead, value: stall == .none).whenComplete { _ in }
        target.setOption(.autoRead, value: stall != .bothWays).whenComplete { _ in }
        if stall == .none { client.read() }
        if stall != .bothWays { target.read() }
    }

    /// Applies to connections made from now on.
    public var conditions: LinkConditions {
        get { state.withLockedValue { $0.conditions } }
        set { state.withLockedValue { $0.conditions = newValue } }
    }

    /// Connections reset so far.
    public var resets: Int { state.withLockedValue { $0.resets } }

    public func stop() async {
        blocked = true
        try? await channel.close()
    }
}

/// Copies bytes between two channels, after the link's delay and at its bandwidth; closing
/// either closes both.
private final class GlueHandler: ChannelDuplexHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = NIOAny
    typealias OutboundOut = NIOAny

    private var partner: GlueHandler?
    private var context: ChannelHandlerContext?
    private let conditions: FaultProxy.LinkConditions
    /// When the last chunk read here reaches the partner: later chunks never overtake it.
    private var lastArrival = NIODeadline.distantPast

    /// While true, a close on one side is not passed on: on a half-open link no FIN arrives.
    private let isBlackHole: @Sendable () -> Bool

    private init(conditions: FaultProxy.LinkConditions, isBlackHole: @escaping @Sendable () -> Bool) {
        self.conditions = conditions
        self.isBlackHole = isBlackHole
    }

    static func pair(conditions: FaultProxy.LinkConditions, isBlackHole: @escaping @Sendable () -> Bool) -> (GlueHandler, GlueHandler) {
        let first = GlueHandler(conditions: conditions, isBlackHole: isBlackHole)
        let second = GlueHandler(conditions: conditions, isBlackHole: isBlackHole)
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
        if conditions == .perfect {
            partner?.write(data)
            return
        }
        let bytes = Int64(unwrapInboundIn(data).readableBytes)
        let now = NIODeadline.now()
        var arrival = max(now, lastArrival)
        if conditions.bytesPerSecond > 0 { arrival = arrival + .microseconds(bytes * 1_000_000 / conditions.bytesPerSecond) }
        let jitter = conditions.jitterMilliseconds > 0 ? Int64.random(in: 0...conditions.jitterMilliseconds) : 0
        arrival = max(arrival, now + .milliseconds(conditions.oneWayDelayMilliseconds + jitter))
        lastArrival = arrival
        context.eventLoop.scheduleTask(deadline: arrival) { [weak self] in
            self?.partner?.write(data)
            self?.partner?.flush()
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if conditions == .perfect { partner?.flush() }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !isBlackHole() { partner?.close() }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }

    // Both channels of a pair live on the same event loop (the outbound one is connected from
    // the inbound one's loop), so the partner's context is safe to use directly.
    private func write(_ data: NIOAny) { context?.write(data, promise: nil) }
    private func flush() { context?.flush() }
    private func close() { context?.close(promise: nil) }
}
