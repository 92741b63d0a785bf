import NIOCore
import NIOHTTP1
import NIOPosix

/// One keep-alive HTTP/1.1 connection that sends a request, reads the answer, and sends the
/// next. The generator must cost far less than the server it measures; AsyncHTTPClient's
/// connection pool and request machinery cost about as much CPU per request as the relay itself.
struct LoadConnection {
    let host: String
    let port: Int

    /// Runs `next` until it returns nil, posting each body to `path` and passing the status and
    /// latency to `record`.
    func run(
        path: String, next: () -> [UInt8]?, record: (_ status: Int, _ latency: Duration) -> Void
    ) async throws {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
                }
            }
        try await channel.executeThenClose { inbound, outbound in
            var responses = inbound.makeAsyncIterator()
            var headers = HTTPHeaders()
            headers.add(name: "Host", value: "\(host):\(port)")
            headers.add(name: "Content-Type", value: "application/json")
            while let body = next() {
                var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: path, headers: headers)
                head.headers.replaceOrAdd(name: "Content-Length", value: String(body.count))
                let sent = ContinuousClock.now
                try await outbound.write(contentsOf: [.head(head), .body(.byteBuffer(ByteBuffer(bytes: body))), .end(nil)])
                var status = 0
                while let part = try await responses.next() {
                    if case .head(let responseHead) = part { status = Int(responseHead.status.code) }
                    if case .end = part { break }
                }
                record(status, ContinuousClock.now - sent)
            }
        }
    }
}
