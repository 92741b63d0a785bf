import Foundation
import Hummingbird
import RelayCore

/// `GET /v1/status`, everything `pdrelay status` and the status page show about this node in one
/// answer, and `GET /`, the status page itself. Both are open like `/v1/cluster`: they carry
/// counts, masked routing keys and the words of recent problems, no event bodies. The page asks
/// the admin API (with the token, when one is set) for incidents, windows and dead letters.
struct StatusRoutes: Sendable {
    let operations: OperationsRoutes
    let engine: RelayEngine
    let metrics: NodeMetrics
    let readiness: Readiness
    let environment: NodeEnvironment

    func register(on router: Router<ClientRequestContext>) {
        router.get("/v1/status") { _, _ in JSONResponses.json(.ok, await status()) }
        router.get("/") { _, _ in
            Response(
                status: .ok,
                headers: [
                    .contentType: "text/html; charset=utf-8", .cacheControl: "no-store",
                    // Everything is inline and nothing is fetched from elsewhere: it works offline.
                    .contentSecurityPolicy: "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:",
                ],
                body: .init(byteBuffer: ByteBuffer(string: StatusPage.html)))
        }
    }

    func status() async -> JSONValue {
        let now = environment.wallClockMilliseconds()
        let problems = await readiness.problems(asLeader: false)
        let queue = await engine.status()
        let (series, recentProblems) = metrics.recent.withLockedValue { ($0.series(nowMilliseconds: now), $0.problems) }
        var answers: [String: Int] = [:]
        for bucket in series { answers.merge(bucket.answers, uniquingKeysWith: +) }
        return .object([
            "version": .string(RelayVersion.current),
            // For `pdrelay drill --hard`, run on this host: the process to kill.
            "pid": .integer(Int64(ProcessInfo.processInfo.processIdentifier)),
            "now_ms": .integer(now),
            "ready": .bool(problems.isEmpty),
            "readiness_problems": .array(problems.map(JSONValue.string)),
            "cluster": await operations.clusterDescription(),
            "queue": .object([
                "pending": .integer(Int64(queue.pending)), "dead": .integer(Int64(queue.dead)),
                "in_flight": .integer(Int64(queue.inFlight)), "max_queued_events": .integer(Int64(queue.maxQueuedEvents)),
                "routing_keys": .array(
                    queue.routingKeys.map {
                        .object([
                            "routing_key": .string($0.routingKey), "pending": .integer(Int64($0.pending)), "dead": .integer(Int64($0.dead)),
                        ])
                    }),
            ]),
            "deliveries": .object([
                "bucket_seconds": .integer(RecentActivity.bucketMilliseconds / 1_000),
                "series": .array(
                    series.map { bucket in
                        .object([
                            "start_ms": .integer(bucket.startMilliseconds), "delivered": .integer(Int64(bucket.delivered)),
                            "retried": .integer(Int64(bucket.retried)), "dead_lettered": .integer(Int64(bucket.deadLettered)),
                            "latency_avg_ms": .integer(bucket.delivered == 0 ? 0 : bucket.latencySumMilliseconds / Int64(bucket.delivered)),
                            "latency_max_ms": .integer(bucket.latencyMaxMilliseconds),
                        ])
                    }),
                "upstream_answers": .object(answers.mapValues { .integer(Int64($0)) }),
            ]),
            "drills": .array(
                await engine.drills.suffix(10).reversed().map { drill in
                    .object([
                        "id": .integer(Int64(drill.id)), "started_at_ms": .integer(drill.startedAtMilliseconds), "hard": .bool(drill.hard),
                        "from_leader": .integer(Int64(drill.fromLeader)), "to_leader": .integer(Int64(drill.toLeader)),
                        "accepted_after_ms": .integer(drill.acceptedAfterMilliseconds),
                        "delivered_after_ms": .integer(drill.deliveredAfterMilliseconds), "canaries": .integer(Int64(drill.canaries)),
                        "delivered": .integer(Int64(drill.delivered)), "in_order": .bool(drill.inOrder),
                        "objective_ms": .integer(drill.objectiveMilliseconds), "passed": .bool(drill.passed), "note": .string(drill.note),
                    ])
                }),
            "recent_problems": .array(
                recentProblems.reversed().map { .object(["at_ms": .integer($0.atMilliseconds), "text": .string($0.text)]) }),
        ])
    }
}
