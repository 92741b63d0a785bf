import Foundation

/// Closed-loop load: each connection sends its next event as soon as the previous one is
/// answered, until the time is up. Every event has its own dedup_key, so none is a duplicate or
/// coalesced: each costs the node a full durable write.
struct Generator: Sendable {
    let url: String
    let connections: Int
    let payloadBytes: Int
    let routingKeys: Int

    struct Result: Sendable {
        var accepted = 0
        var acceptedKeys: Set<String> = []
        var rejectedByStatus: [String: Int] = [:]
        var latenciesMilliseconds: [Double] = []
        var seconds = 0.0

        var latencyPercentiles: [String: Double] {
            let sorted = latenciesMilliseconds.sorted()
            guard !sorted.isEmpty else { return [:] }
            func at(_ fraction: Double) -> Double { sorted[min(sorted.count - 1, Int(Double(sorted.count) * fraction))] }
            return ["p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "p99.9": at(0.999), "max": sorted.last!]
        }

        mutating func merge(_ other: Result) {
            accepted += other.accepted
            acceptedKeys.formUnion(other.acceptedKeys)
            rejectedByStatus.merge(other.rejectedByStatus, uniquingKeysWith: +)
            latenciesMilliseconds += other.latenciesMilliseconds
        }
    }

    func run(for duration: Duration) async throws -> Result {
        guard let components = URLComponents(string: url), let host = components.host, let port = components.port else {
            throw GeneratorFailure(description: "cannot read host and port from \(url)")
        }
        let padding = String(repeating: "x", count: max(0, payloadBytes - 280))
        let started = ContinuousClock.now
        let deadline = started + duration
        var total = try await withThrowingTaskGroup(of: Result.self) { group in
            for connection in 0..<connections {
                group.addTask {
                    var result = Result()
                    var sequence = 0
                    var key = ""
                    try await LoadConnection(host: host, port: port).run(
                        path: "/v2/enqueue",
                        next: {
                            guard ContinuousClock.now < deadline else { return nil }
                            sequence += 1
                            key = "lt-\(connection)-\(sequence)"
                            let routingKey = "loadtestroutingkey" + String(format: "%014d", sequence % max(routingKeys, 1))
                            return Array(
                                #"{"routing_key":"\#(routingKey)","event_action":"trigger","dedup_key":"\#(key)","payload":{"summary":"load test event \#(key)","source":"loadtest-\#(connection)","severity":"warning","custom_details":{"padding":"\#(padding)"}}}"#
                                    .utf8)
                        },
                        record: { status, latency in
                            result.latenciesMilliseconds.append(latency.seconds * 1_000)
                            if status == 202 {
                                result.accepted += 1
                                result.acceptedKeys.insert(key)
                            } else {
                                result.rejectedByStatus[String(status), default: 0] += 1
                            }
                        })
                    return result
                }
            }
            return try await group.reduce(into: Result()) { $0.merge($1) }
        }
        total.seconds = (ContinuousClock.now - started).seconds
        return total
    }
}

struct GeneratorFailure: Error, CustomStringConvertible {
    let description: String
}
