import ArgumentParser
import ClusterHarness
import Foundation
import MockPagerDuty
import RelayClient
import RelayProcess

/// Three nodes behind HAProxy, every commit synced on a majority: the same two phases as
/// `single-node` (durable ingest while deliveries are held, then the backlog's delivery after a
/// restart), with the generator sending through the load balancer.
struct ClusterThroughput: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster", abstract: "Durable ingest and delivery rates of three nodes behind HAProxy.")

    @Option(help: "The pdrelay binary to measure (build it with -c release).") var relayBinary = ".build/release/pdrelay"
    @Option(help: "Length of the ingest phase.") var durationSeconds = 10
    @Option(help: "Concurrent client connections.") var connections = 32
    @Option(help: "Approximate size of each event body.") var payloadBytes = 600
    @Option(help: "Routing keys the events spread over.") var routingKeys = 4
    @Option(help: "Write the report as JSON to this file too.") var json: String?

    func validate() throws {
        guard (1...600).contains(durationSeconds) else { throw ValidationError("--duration-seconds must be 1...600") }
        guard (1...1_024).contains(connections) else { throw ValidationError("--connections must be 1...1024") }
        guard FileManager.default.isExecutableFile(atPath: relayBinary) else {
            throw ValidationError("no pdrelay binary at \(relayBinary); run: swift build -c release --product pdrelay")
        }
    }

    static let benchmarkSettings = ["max_queued_events: 5000000", "queue_high_water_events: 5000000", "max_dedup_keys: 10000000"]

    func run() async throws {
        let upstream = MockPagerDuty()
        try await upstream.start()
        await upstream.setDefaultReply(.delayed(milliseconds: 600, .status(503)))
        let directory = NSTemporaryDirectory() + "pdrelay-loadtest-cluster-\(UUID().uuidString.prefix(8))"
        let root = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
        let binary = URL(fileURLWithPath: relayBinary)
        var cluster = try await LocalCluster(
            packageRoot: root, binary: binary, directory: directory, upstreamURL: await upstream.baseURL,
            settings: Self.benchmarkSettings + ["delivery_concurrency: 1", "log_level: warning"])
        try await cluster.waitUntilReady()
        let ingest = try await Generator(
            url: cluster.loadBalancerURL, connections: connections, payloadBytes: payloadBytes, routingKeys: routingKeys
        ).run(for: .seconds(durationSeconds))
        let cpu = LocalCluster.nodes.map { cluster.pid($0).flatMap(RelayProcess.cpuSeconds(pid:)) }
        await cluster.stop()

        // Phase 2: the same stores, normal delivery settings, a mock that accepts at once.
        await upstream.setDefaultReply(.accept)
        let deliveryStarted = ContinuousClock.now
        cluster = try await LocalCluster(
            packageRoot: root, binary: binary, directory: directory, upstreamURL: await upstream.baseURL,
            settings: Self.benchmarkSettings + ["log_level: warning"], basePort: cluster.basePort)
        let lost = await upstream.waitUntilDelivered(dedupKeys: ingest.acceptedKeys, timeout: .seconds(600)).count
        let deliverySeconds = (ContinuousClock.now - deliveryStarted).seconds
        await cluster.stop()
        await upstream.stop()
        try? FileManager.default.removeItem(atPath: directory)

        let report = Report(
            durationSeconds: Double(durationSeconds), connections: connections, payloadBytes: payloadBytes,
            accepted: ingest.accepted, rejected: ingest.rejectedByStatus,
            ingestEventsPerMinute: Double(ingest.accepted) / ingest.seconds * 60,
            ingestLatencyMilliseconds: ingest.latencyPercentiles, nodeCPUSecondsDuringIngest: cpu.compactMap { $0 }.reduce(0, +),
            delivered: ingest.accepted, deliverySeconds: deliverySeconds,
            deliveryEventsPerMinute: Double(ingest.accepted) / deliverySeconds * 60, lost: lost)
        print(report.table(title: "pdrelay, 3 nodes behind HAProxy (majority-synced commits)"))
        if let json { try report.write(to: json) }
        if lost > 0 { throw ExitCode.failure }
    }
}

extension LocalCluster {
    /// Waits until every node answers /readyz with 200.
    func waitUntilReady(timeout: Duration = .seconds(60)) async throws {
        let deadline = ContinuousClock.now + timeout
        try await RelayClient.with(baseURL: loadBalancerURL, timeoutMilliseconds: 2_000) { client in
            for node in Self.nodes {
                while (try? await client.get(nodeURL(node), path: "/readyz").status) != 200 {
                    guard ContinuousClock.now < deadline else { throw ValidationError("node \(node) not ready within \(timeout)") }
                    try await Task.sleep(for: .milliseconds(50))
                }
            }
        }
    }
}
