import Hummingbird
import Logging

/// The trivial endpoint of the HTTP ceiling: the relay's own server stack (Hummingbird 2 on
/// SwiftNIO, HTTP/1.1, same build settings) reading each body and answering 202 with
/// PagerDuty's success body, and nothing else: no parsing, no disk, no peers. `GET /readyz`
/// answers 200 so the same HAProxy configuration can front it.
public enum CeilingServer {
    public static func run(port: Int) async throws {
        var logger = Logger(label: "ceiling")
        logger.logLevel = .warning
        let router = Router()
        let answer = ByteBuffer(string: #"{"status":"success","message":"Event processed","dedup_key":"ceiling"}"#)
        router.post("/v2/enqueue") { request, _ in
            _ = try await request.body.collect(upTo: 1_048_576)
            return Response(status: .accepted, headers: [.contentType: "application/json"], body: .init(byteBuffer: answer))
        }
        router.get("/readyz") { _, _ in Response(status: .ok) }
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: port), serverName: "pdrelay-ceiling"),
            logger: logger)
        try await app.runService()
    }
}
