import ArgumentParser
import Foundation
import MockPagerDuty
import RelayProcess

@main
struct LoadTest: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pdrelay-loadtest",
        abstract: "Measure pdrelay's events per minute on this machine.",
        subcommands: [SingleNode.self, ClusterThroughput.self, Failover.self])
}

/// One node, one mock PagerDuty, one load generator, all on loopback.
///
/// Phase 1, durable ingest: closed-loop clients send unique triggers for a fixed time while the
/// mock holds the node's single delivery slot, so the node does nothing but validate, commit with
/// `synchronous=FULL` and answer. Phase 2, delivery: the node is killed with SIGKILL (its backlog is
/// on disk), restarted with the normal delivery settings and a fast mock, and timed until the mock
/// has received every acknowledged event.
struct SingleNode: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Durable ingest and delivery rates of one node.")

    @Option(help: "The pdrelay binary to measure (build it with -c release).") var relayBinary = ".build/release/pdrelay"
    @Option(help: "Length of the ingest phase.") var durationSeconds = 10
    @Option(help: "Concurrent client connections.") var connections = 32
    @Option(help: "Approximate size of each event body.") var payloadBytes = 600
    @Option(help: "Routing keys the events spread over.") var routingKeys = 4
    @Option(help: "delivery_concurrency of the node in the delivery phase.") var deliveryConcurrency = 32
    @Option(help: "Write the report as JSON to this file too.") var json: String?

    func validate() throws {
        guard (1...600).contains(durationSeconds) else { throw ValidationError("--duration-seconds must be 1...600") }
        guard (1...1_024).contains(connections) else { throw ValidationError("--connections must be 1...1024") }
        guard (300...50_000).contains(payloadBytes) else { throw ValidationError("--payload-bytes must be 300...50000") }
        guard FileManager.default.isExecutableFile(atPath: relayBinary) else {
            throw ValidationError("no pdrelay binary at \(relayBinary); run: swift build -c release --product pdrelay")
        }
    }

    /// Room for the whole run's events: the queue limits are not what is measured.
    static let benchmarkLimits = [
        "PDRELAY_MAX_QUEUED_EVENTS": "5000000", "PDRELAY_QUEUE_HIGH_WATER_EVENTS": "5000000", "PDRELAY_MAX_DEDUP_KEYS": "10000000",
    ]

    func run() async throws {
        let upstream = MockPagerDuty()
        try await upstream.start()
        let data = NSTemporaryDirectory() + "pdrelay-loadtest-\(UUID().uuidString.prefix(8))"
        // Phase 1: the only delivery slot hangs for the whole phase.
        await upstream.setDefaultReply(.delayed(milliseconds: (durationSeconds + 5) * 1_000, .status(503)))
        let ingestNode = try await RelayProcess(
            binary: URL(fileURLWithPath: relayBinary), dataDirectory: data,
            environment: Self.benchmarkLimits.merging([
                "PDRELAY_UPSTREAM_URL": await upstream.baseURL, "PDRELAY_DELIVERY_CONCURRENCY": "1",
                "PDRELAY_UPSTREAM_TIMEOUT_MILLISECONDS": "300000",
            ]) { _, new in new })
        let generator = Generator(
            url: ingestNode.url, connections: connections, payloadBytes: payloadBytes, routingKeys: routingKeys)
        let ingest = try await generator.run(for: .seconds(durationSeconds))
        let cpu = ingestNode.cpuSeconds()
        await ingestNode.kill9()

        // Phase 2: restart on the same store; a fast mock; time the backlog's delivery.
        await upstream.setDefaultReply(.accept)
        let deliveryStarted = ContinuousClock.now
        let deliveryNode = try await RelayProcess(
            binary: URL(fileURLWithPath: relayBinary), dataDirectory: data,
            environment: Self.benchmarkLimits.merging([
                "PDRELAY_UPSTREAM_URL": await upstream.baseURL, "PDRELAY_DELIVERY_CONCURRENCY": "\(deliveryConcurrency)",
            ]) { _, new in new })
        let expected = ingest.accepted
        let lost = await upstream.waitUntilDelivered(dedupKeys: ingest.acceptedKeys, timeout: .seconds(600)).count
        let deliverySeconds = (ContinuousClock.now - deliveryStarted).seconds
        _ = await deliveryNode.terminate()
        await upstream.stop()
        try? FileManager.default.removeItem(atPath: data)

        let report = Report(
            durationSeconds: Double(durationSeconds), connections: connections, payloadBytes: payloadBytes,
            accepted: ingest.accepted, rejected: ingest.rejectedByStatus,
            ingestEventsPerMinute: Double(ingest.accepted) / ingest.seconds * 60,
            ingestLatencyMilliseconds: ingest.latencyPercentiles, nodeCPUSecondsDuringIngest: cpu,
            delivered: expected, deliverySeconds: deliverySeconds, deliveryEventsPerMinute: Double(expected) / deliverySeconds * 60,
            lost: lost)
        print(report.table(title: "pdrelay single node"))
        if let json { try report.write(to: json) }
        if lost > 0 { throw ExitCode.failure }
    }
}

struct Report: Codable {
    var durationSeconds: Double
    var connections: Int
    var payloadBytes: Int
    var accepted: Int
    var rejected: [String: Int]
    var ingestEventsPerMinute: Double
    var ingestLatencyMilliseconds: [String: Double]
    var nodeCPUSecondsDuringIngest: Double?
    var delivered: Int
    var deliverySeconds: Double
    var deliveryEventsPerMinute: Double
    var lost: Int

    func write(to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(self).write(to: URL(fileURLWithPath: path))
    }

    func table(title: String) -> String {
        let latency = ["p50", "p90", "p99", "p99.9", "max"].map { "\($0) \(String(format: "%.2f", ingestLatencyMilliseconds[$0] ?? 0))" }
        return """
            \(title), \(connections) connections, ~\(payloadBytes)-byte events
            durable ingest   \(accepted) events in \(String(format: "%.1f", durationSeconds)) s = \(Int(ingestEventsPerMinute)) events/min
                             rejected: \(rejected.isEmpty ? "none" : rejected.map { "\($0.key)×\($0.value)" }.joined(separator: " "))
                             latency ms: \(latency.joined(separator: ", "))
                             node CPU: \(nodeCPUSecondsDuringIngest.map { String(format: "%.1f s", $0) } ?? "n/a")
            delivery         \(delivered) events in \(String(format: "%.1f", deliverySeconds)) s = \(Int(deliveryEventsPerMinute)) events/min (after kill -9 and restart)
            lost             \(lost)
            """
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
