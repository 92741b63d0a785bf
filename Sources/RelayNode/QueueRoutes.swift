import Crypto
import Foundation
import Hummingbird
import RelayCore

/// The queue API behind `pdrelay queue`: what pdagent's `pd-queue` did to its spool directory,
/// done through the engine so that every change is a command like any other (and, in a cluster,
/// replicated). Guarded by `admin_token` when one is set.
struct QueueRoutes: Sendable {
    let engine: RelayEngine
    let commands: CommandRouter
    /// `admin_token`, and `admin_token_next` during a rotation.
    let adminTokens: [String]
    static let maxListLimit = 10_000

    func register(on router: Router<ClientRequestContext>) {
        let queue = router.group("/v1/queue").add(middleware: AdminTokenMiddleware(tokens: adminTokens))
        queue.get("/status") { _, _ in try Self.encode(await engine.status()) }
        queue.get("/events") { request, _ in
            let filter = try Self.filter(request.uri.queryParameters)
            let limit = min(request.uri.queryParameters["limit"].flatMap { Int($0) } ?? 100, Self.maxListLimit)
            return try Self.encode(await engine.events(matching: filter, limit: limit).map(EventSummary.init))
        }
        queue.get("/events/:number") { _, context in
            let number = try context.parameters.require("number", as: UInt64.self)
            guard let event = await engine.events(matching: EventFilter(eventNumber: number), limit: 1).first else {
                throw HTTPError(.notFound, message: "No queued event \(number); delivered events leave the queue")
            }
            return try Self.encode(EventDetail(event, attempts: try await engine.attempts(of: number)))
        }
        queue.post("/retry") { request, context in
            var filter = try await request.decode(as: EventFilter.self, context: context)
            filter.states = [.dead]
            guard case .retried(let count, let superseded) = try await submit(.retryDead(filter)) else {
                preconditionFailure("retryDead returned another result")
            }
            return try Self.encode(QueueCommandOutcome(retried: count, superseded: superseded))
        }
        queue.post("/purge") { request, context in
            let filter = try await request.decode(as: EventFilter.self, context: context)
            guard case .purged(let count) = try await submit(.purge(filter)) else {
                preconditionFailure("purge returned another result")
            }
            return try Self.encode(QueueCommandOutcome(purged: count))
        }
    }

    private func submit(_ command: RelayCommand) async throws -> CommandResult {
        do {
            return try await commands.submit(command)
        } catch {
            throw HTTPError(.serviceUnavailable, message: "The command was not applied: \(IngestRoutes.explain(error))")
        }
    }

    static func filter(_ query: Hummingbird.Parameters) throws -> EventFilter {
        var filter = EventFilter(routingKey: query["routing_key"].map(String.init), dedupKey: query["dedup_key"].map(String.init))
        if let state = query["state"] {
            guard let parsed = QueuedEvent.State(rawValue: String(state)) else {
                throw HTTPError(.badRequest, message: "state must be pending or dead, not '\(state)'")
            }
            filter.states = [parsed]
        }
        return filter
    }

    static func encode(_ value: some Encodable) throws -> Response {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        return Response(
            status: .ok, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: try encoder.encode(value))))
    }
}

/// `Authorization: Bearer <admin_token>`. A request that changes state always needs it: with no
/// `admin_token` configured, none can be authorised, so an operator action is never open to
/// whoever can reach the port. Reads need it when one is configured (a node without one listens
/// only on loopback, which `RelayConfiguration.validate` enforces).
///
/// During a rotation two tokens are accepted (`admin_token_next`), so clients can move to the new
/// one before the old one is dropped.
struct AdminTokenMiddleware: RouterMiddleware {
    typealias Context = ClientRequestContext
    let tokens: [String]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let changesState = ![.get, .head].contains(request.method)
        guard !tokens.isEmpty else {
            guard !changesState else {
                throw HTTPError(
                    .unauthorized,
                    message:
                        "Changing state needs the admin token, and this node has none: set admin_token (or PDRELAY_ADMIN_TOKEN) and send Authorization: Bearer <admin_token>"
                )
            }
            return try await next(request, context)
        }
        let presented = request.headers[.authorization].map { $0.hasPrefix("Bearer ") ? String($0.dropFirst(7)) : "" } ?? ""
        // Every token is compared, so the time taken does not say which one matched.
        guard tokens.map({ Self.sameSecret(presented, $0) }).contains(true) else {
            throw HTTPError(.unauthorized, message: "The queue API needs Authorization: Bearer <admin_token>")
        }
        return try await next(request, context)
    }

    /// Compares digests, in time that depends on neither value, not even its length.
    static func sameSecret(_ presented: String, _ expected: String) -> Bool {
        let a = SHA256.hash(data: Array(presented.utf8))
        let b = SHA256.hash(data: Array(expected.utf8))
        return zip(a, b).reduce(0) { $0 | ($1.0 ^ $1.1) } == 0
    }
}
