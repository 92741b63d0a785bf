import AsyncHTTPClient
import Hummingbird
import Logging
import NIOCore

/// The forwarding floor: the least a relay that delivers every event with its own upstream
/// request can do per event on this stack. One HTTP request in on the relay's server stack
/// (Hummingbird 2 on SwiftNIO) and the same body out to the upstream on the relay's client
/// (AsyncHTTPClient, pooled keep-alive connections, tracing off), answering 202 once the
/// upstream has: no parsing, no disk, no peers, no queue, no ordering.
///
/// pdrelay does all of this for every event and more, so the floor's rate over the HTTP ceiling
/// bounds what any such relay can reach on this machine, and pdrelay's rate over the floor's is
/// what its own work (validation, the log, SQLite, replication) costs.
///
/// Behind HAProxy, only a `leader` answers `GET /readyz/leader` with 200, as only the cluster's
/// leader does, so HAProxy sends the load where it sends a cluster's.
public enum ForwarderServer {
    public static func run(port: Int, upstreamURL: String, leader: Bool) async throws {
        var logger = Logger(label: "forwarder")
        logger.logLevel = .warning
        var configuration = HTTPClient.Configuration(timeout: .init(connect: .seconds(5)))
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 256)
        configuration.redirectConfiguration = .disallow
        configuration.tracing.tracer = nil
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        let target = (upstreamURL.hasSuffix("/") ? String(upstreamURL.dropLast()) : upstreamURL) + "/v2/enqueue"
        let router = Router()
        router.post("/v2/enqueue") { request, _ in
            var outgoing = HTTPClientRequest(url: target)
            outgoing.method = .POST
            outgoing.headers.add(name: "Content-Type", value: "application/json")
            outgoing.body = .bytes(try await request.body.collect(upTo: 1_048_576))
            let response = try await client.execute(outgoing, timeout: .seconds(10))
            let answer = try await response.body.collect(upTo: 65_536)
            return Response(
                status: response.status == .accepted ? .accepted : .badGateway, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: answer))
        }
        router.get("/readyz") { _, _ in Response(status: .ok) }
        router.get("/readyz/leader") { _, _ in Response(status: leader ? .ok : .serviceUnavailable) }
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: port), serverName: "pdrelay-forwarder"),
            logger: logger)
        do {
            try await app.runService()
        } catch {
            try? await client.shutdown()
            throw error
        }
        try await client.shutdown()
    }
}
