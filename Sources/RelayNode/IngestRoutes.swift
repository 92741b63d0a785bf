import EngineCore
import Hummingbird
import Logging
import NIOConcurrencyHelpers
import RelayCore

/// The three PagerDuty-compatible endpoints. A request is validated before it touches the
/// engine, so a bad event costs no disk write; a good one is answered only once it is synced.
struct IngestRoutes: Sendable {
    let intake: EventIntake
    let environment: NodeEnvironment
    let limits: ValidationLimits
    let metrics: NodeMetrics
    let logger: Logger
    /// "Queue Full" is logged at most every 10 s: every refused client would otherwise log it.
    let refusals = NIOLockedValueBox(LogThrottle<String>(intervalMilliseconds: 10_000))

    static let paths: [(String, IngestAPI)] = [
        ("/v2/enqueue", .v2Alert),
        ("/v2/change/enqueue", .v2Change),
        ("/generic/2010-04-15/create_event.json", .v1Generic),
    ]

    func register(on router: Router<ClientRequestContext>) {
        for (path, api) in Self.paths {
            router.post(RouterPath(path)) { request, _ in await ingest(api, request) }
        }
    }

    func ingest(_ api: IngestAPI, _ request: Request) async -> Response {
        let receivedAt = environment.monotonicMilliseconds()
        if let contentType = request.headers[.contentType], !Self.isJSON(contentType) {
            metrics.rejected("unsupported_media_type")
            return JSONResponses.error(
                .unsupportedMediaType, .unrecognized("Content-Type must be application/json, not '\(contentType.prefix(100))'"))
        }
        let body: ByteBuffer
        do {
            if let length = request.headers[.contentLength].flatMap(Int.init), length > limits.maxEventBytes { throw TooLarge() }
            body = try await request.body.collect(upTo: limits.maxEventBytes)
        } catch {
            metrics.rejected("too_large")
            return JSONResponses.error(
                .contentTooLarge, .invalid(["Event is larger than the limit of \(limits.maxEventBytes) bytes"]))
        }
        switch await intake.take(Array(body.readableBytesView), api: api, receivedAtMilliseconds: receivedAt) {
        case .taken(let outcome, let dedupKey):
            metrics.accepted(api, outcome)
            return JSONResponses.accepted(api, dedupKey: dedupKey)
        case .invalid(let error):
            metrics.rejected(error.reason)
            return JSONResponses.error(.badRequest, error)
        case .queueFull(let routingKey):
            metrics.rejected("queue_full")
            if refusals.withLockedValue({ $0.allows("queue_full", now: receivedAt) }) {
                logger.error(
                    "Queue Full: refusing events with 503 until deliveries make room (see pdrelay queue status)",
                    metadata: ["routing_key": "\(RoutingKeyMask.mask(routingKey))"])
            }
            return JSONResponses.unavailable(
                status: "Queue Full", message: "Queue Full: the relay holds its limit of undelivered events; retry later",
                retryAfterSeconds: 30)
        case .unavailable(let error):
            metrics.rejected("unavailable")
            return JSONResponses.unavailable(
                status: "unavailable", message: "The relay cannot take events right now: \(Self.explain(error))", retryAfterSeconds: 1)
        }
    }

    private struct TooLarge: Error {}

    /// What a client (and the person reading its logs) is told when the relay cannot answer.
    static func explain(_ error: EngineError) -> String {
        switch error {
        case .noLeader: "no cluster leader is known; the cluster is electing one or has lost its majority"
        case .outcomeUnknown(let reason): "the event may not have been stored (\(reason)); retry"
        case .storeFailed(let reason): "the store failed (\(reason)); that node must be restarted"
        case .notLeader, .peerFailed: "the leader could not be reached (\(error))"
        case .staleRequest: "a node on the request's path was paused after it arrived; retry"
        }
    }

    /// `application/json`, with or without parameters such as `charset=utf-8`.
    static func isJSON(_ contentType: String) -> Bool {
        let mediaType = contentType.split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased()
        return mediaType == "application/json" || mediaType?.hasSuffix("+json") == true
    }
}
