import Hummingbird
import RelayCore

/// Liveness, readiness and metrics, for load balancers, supervisors and Prometheus.
struct OperationsRoutes: Sendable {
    let engine: RelayEngine
    let metrics: NodeMetrics
    let queueHighWaterEvents: Int

    func register(on router: Router<BasicRequestContext>) {
        // Live means the process should keep running: false only once the store has failed,
        // after which only a restart (from disk) helps.
        router.get("/healthz") { _, _ in
            if let failure = await engine.storeFailure {
                return JSONResponses.json(.serviceUnavailable, .object(["status": "failed", "reason": .string(failure)]))
            }
            return JSONResponses.json(.ok, .object(["status": "ok"]))
        }
        // Ready means send me events: the store takes a synced write and the queue has room.
        router.get("/readyz") { _, _ in
            var problems: [JSONValue] = []
            if let failure = await engine.probeStore() { problems.append(.string("store not writable: \(failure)")) }
            let queued = await engine.queuedCount
            if queued >= queueHighWaterEvents {
                problems.append(.string("queue holds \(queued) events, at or above its high-water mark of \(queueHighWaterEvents)"))
            }
            return problems.isEmpty
                ? JSONResponses.json(.ok, .object(["status": "ready"]))
                : JSONResponses.json(.serviceUnavailable, .object(["status": "not ready", "problems": .array(problems)]))
        }
        router.get("/metrics") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: metrics.render())))
        }
    }
}

/// Turns every error, including unknown paths and methods, into a JSON body in PagerDuty's
/// error shape, so no client ever has to parse an empty or HTML answer.
struct JSONErrorMiddleware: RouterMiddleware {
    typealias Context = BasicRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPResponseError {
            let message =
                switch (error.status, (error as? HTTPError)?.body) {
                case (_, let body?): body
                case (.notFound, nil): "No such endpoint: \(request.method) \(request.uri.path)"
                case (.methodNotAllowed, nil): "Method \(request.method) is not allowed on \(request.uri.path)"
                default: error.status.reasonPhrase
                }
            return JSONResponses.error(error.status, IngestError(status: error.status.reasonPhrase, message: message, errors: [message]))
        }
    }
}
