import NIOCore
import NIOHTTP1
import NIOPosix

/// Keep-alive HTTP/1.1 connections that send a request, read the answer, and send the next. The
/// generator must cost far less than the server it measures; AsyncHTTPClient's connection pool
/// and request machinery cost about as much CPU per request as the relay itself.
///
/// A broken or timed-out connection is replaced, so a node killed under a direct connection
/// costs failed requests (status 0), not the rest of the run.
struct LoadConnection {
    let host: String
    let port: Int
    let path: String
    let requestTimeout: TimeAmount

    /// One request: its body, then (status, or 0 for no answer) once it is over.
    struct Exchange {
        var body: [UInt8]
        var finish: (Int) -> Void
    }

    /// Sends what `next` returns until it returns nil. `next` is asked once per request; a
    /// request that fails is finished with status 0 and not sent again.
    func run(next: () async -> Exchange?) async {
        var pending: Exchange?
        while true {
            // Asked before connecting, so a server that refuses every connection still uses up
            // the schedule (each event fails) instead of holding the run.
            if pending == nil { pending = await next() }
            guard pending != nil else { return }
            do {
                let channel = try await connect()
                try await channel.executeThenClose { inbound, outbound in
                    var responses = inbound.makeAsyncIterator()
                    var headers = HTTPHeaders()
                    headers.add(name: "Host", value: "\(host):\(port)")
                    headers.add(name: "Content-Type", value: "application/json")
                    while true {
                        if pending == nil { pending = await next() }
                        guard let exchange = pending else { return }
                        var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: path, headers: headers)
                        head.headers.replaceOrAdd(name: "Content-Length", value: String(exchange.body.count))
                        try await outbound.write(contentsOf: [
                            .head(head), .body(.byteBuffer(ByteBuffer(bytes: exchange.body))), .end(nil),
                        ])
                        var status = 0
                        var complete = false
                        while let part = try await responses.next() {
                            if case .head(let responseHead) = part { status = Int(responseHead.status.code) }
                            if case .end = part {
                                complete = true
                                break
                            }
                        }
                        guard complete else { throw ConnectionClosed() }
                        pending = nil
                        exchange.finish(status)
                    }
                }
                if pending == nil { return }
            } catch {
                pending?.finish(0)
                pending = nil
                try? await Task.sleep(for: .milliseconds(50))
            }
        }
    }

    private struct ConnectionClosed: Error {}

    private func connect() async throws -> NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart> {
        let timeout = requestTimeout
        return try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(2))
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(RequestTimeoutHandler(timeout: timeout))
                    return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
                }
            }
    }
}

/// Closes the connection when an answer takes longer than the timeout: a frozen server must not
/// hold a bounded run open.
private final class RequestTimeoutHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias InboundOut = HTTPClientResponsePart
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = HTTPClientRequestPart

    private let timeout: TimeAmount
    private var timer: Scheduled<Void>?

    init(timeout: TimeAmount) { self.timeout = timeout }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) {
            timer?.cancel()
            let channel = context.channel
            timer = context.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
        }
        context.write(data, promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .end = unwrapInboundIn(data) {
            timer?.cancel()
            timer = nil
        }
        context.fireChannelRead(data)
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        context.fireChannelInactive()
    }
}
