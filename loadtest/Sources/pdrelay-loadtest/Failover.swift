import ArgumentParser
import ClusterHarness
import Foundation
import MockPagerDuty
import NIOConcurrencyHelpers
import RelayClient

/// Kills the leader of a three-node cluster behind HAProxy with SIGKILL, again and again, under
/// a steady stream of events, and times two things from each kill: the first `202` through the
/// load balancer for a request sent after the kill, and the first delivery upstream by the new
/// leader (an attempt carrying a newer term). The killed node is restarted between rounds.
struct Failover: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Failover time after kill -9 of the leader, through HAProxy, over several kills.")

    @Option(help: "The pdrelay binary to measure (build it with -c release).") var relayBinary = ".build/release/pdrelay"
    @Option(help: "How many times to kill the leader.") var kills = 10
    @Option(help: "Clients sending events one after another through HAProxy.") var clients = 4
    @Option(help: "Write the report as JSON to this file too.") var json: String?

    func validate() throws {
        guard (1...100).contains(kills) else { throw ValidationError("--kills must be 1...100") }
        guard (1...64).contains(clients) else { throw ValidationError("--clients must be 1...64") }
        guard FileManager.default.isExecutableFile(atPath: relayBinary) else {
            throw ValidationError("no pdrelay binary at \(relayBinary); run: swift build -c release --product pdrelay")
        }
    }

    struct Round: Codable {
        var killedNode: Int
        var oldTerm: Int
        var firstAcceptedMilliseconds: Double
        var firstDeliveryMilliseconds: Double
    }

    struct FailoverReport: Codable {
        var rounds: [Round]
        var medianFirstAcceptedMilliseconds: Double
        var medianFirstDeliveryMilliseconds: Double
        var acknowledged: Int
        var lost: Int
        var orderViolations: Int
        var staleTermDeliveries: Int
        var duplicatesBeyondBound: Int
    }

    func run() async throws {
        let upstream = MockPagerDuty()
        try await upstream.start()
        let directory = NSTemporaryDirectory() + "pdrelay-failover-\(UUID().uuidString.prefix(8))"
        let cluster = try await LocalCluster(
            packageRoot: URL(fileURLWithPath: FileManager.default.currentDirectoryPath), binary: URL(fileURLWithPath: relayBinary),
            directory: directory, upstreamURL: await upstream.baseURL, settings: ["log_level: notice"])
        let probe = RelayClient(baseURL: cluster.loadBalancerURL, timeoutMilliseconds: 1_000)
        try await cluster.waitUntilReady()
        let stream = SteadyStream(url: cluster.loadBalancerURL, clients: clients)
        var rounds: [Round] = []
        for round in 1...kills {
            try await cluster.waitUntilReady()
            try await Task.sleep(for: .seconds(1))
            let (leader, term) = try await Self.leader(of: cluster, probe: probe)
            let killedAt = ContinuousClock.now
            await cluster.kill9(leader)
            let deadline = killedAt + .seconds(60)
            var accepted: Duration?
            var delivered: Duration?
            while accepted == nil || delivered == nil {
                guard ContinuousClock.now < deadline else { throw ValidationError("round \(round): no recovery within 60 s") }
                accepted = accepted ?? stream.firstAccepted(sentAfter: killedAt).map { $0 - killedAt }
                if delivered == nil {
                    delivered = await upstream.deliveries.first { delivery in
                        delivery.receivedAt > killedAt && (delivery.term.flatMap(Int.init) ?? 0) > term
                    }.map { $0.receivedAt - killedAt }
                }
                try await Task.sleep(for: .milliseconds(5))
            }
            let result = Round(
                killedNode: leader, oldTerm: term, firstAcceptedMilliseconds: accepted!.seconds * 1_000,
                firstDeliveryMilliseconds: delivered!.seconds * 1_000)
            print(
                "kill \(round): node \(leader) (term \(term)) → first 202 after \(Int(result.firstAcceptedMilliseconds)) ms, first delivery by the new leader after \(Int(result.firstDeliveryMilliseconds)) ms"
            )
            rounds.append(result)
            try await cluster.start(leader)
        }
        let acknowledged = await stream.stop()
        try await cluster.waitUntilReady()
        _ = await upstream.waitUntilDelivered(dedupKeys: Set(acknowledged.map(\.dedupKey)), timeout: .seconds(120))
        try await Task.sleep(for: .seconds(1))
        let audit = DeliveryAudit(acknowledged: acknowledged, deliveries: await upstream.deliveries)
        try? await probe.shutdown()
        await cluster.stop()
        await upstream.stop()

        func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
        let report = FailoverReport(
            rounds: rounds, medianFirstAcceptedMilliseconds: median(rounds.map(\.firstAcceptedMilliseconds)),
            medianFirstDeliveryMilliseconds: median(rounds.map(\.firstDeliveryMilliseconds)), acknowledged: acknowledged.count,
            lost: audit.lost.count, orderViolations: audit.orderViolations.count, staleTermDeliveries: audit.staleTermDeliveries.count,
            duplicatesBeyondBound: audit.duplicatesBeyondBound.count)
        print(
            """
            failover over \(kills) kill -9s of the leader, \(clients) clients through HAProxy:
              first 202 after the kill:                 median \(Int(report.medianFirstAcceptedMilliseconds)) ms (min \(Int(rounds.map(\.firstAcceptedMilliseconds).min()!)), max \(Int(rounds.map(\.firstAcceptedMilliseconds).max()!)))
              first delivery by the new leader:         median \(Int(report.medianFirstDeliveryMilliseconds)) ms (min \(Int(rounds.map(\.firstDeliveryMilliseconds).min()!)), max \(Int(rounds.map(\.firstDeliveryMilliseconds).max()!)))
              acknowledged \(acknowledged.count); \(audit)
            """)
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(report).write(to: URL(fileURLWithPath: json))
        }
        if !audit.isClean { throw ExitCode.failure }
    }

    static func leader(of cluster: LocalCluster, probe: RelayClient) async throws -> (node: Int, term: Int) {
        for _ in 0..<600 {
            for node in LocalCluster.nodes {
                if let view = try? await probe.get(cluster.nodeURL(node), path: "/v1/cluster").json, view["role"] as? String == "leader",
                    let term = view["term"] as? Int
                {
                    return (node, term)
                }
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw ValidationError("no leader")
    }
}

/// Clients that each send unique triggers one after another, retrying an event until it is
/// accepted, and remember when each accepted request was sent and answered.
final class SteadyStream: Sendable {
    private struct State {
        var acknowledged: Set<DeliveryAudit.Acknowledged> = []
        var answers: [(sent: ContinuousClock.Instant, answered: ContinuousClock.Instant)] = []
        var stopping = false
    }

    private let state = NIOLockedValueBox(State())
    private let tasks: [Task<Void, Never>]
    private let client: RelayClient

    init(url: String, clients: Int) {
        let client = RelayClient(baseURL: url, timeoutMilliseconds: 30_000, maxConnections: clients)
        self.client = client
        let state = self.state
        tasks = (0..<clients).map { index in
            Task {
                var sequence = 0
                while !state.withLockedValue({ $0.stopping }) {
                    sequence += 1
                    let key = "failover-\(index)-\(sequence)"
                    let body = Array(
                        #"{"routing_key":"failoverroutingkey00000000000000","event_action":"trigger","dedup_key":"\#(key)","payload":{"summary":"failover drill \#(key)","source":"loadtest","severity":"warning"}}"#
                            .utf8)
                    while !state.withLockedValue({ $0.stopping }) {
                        let sent = ContinuousClock.now
                        if let response = try? await client.post("/v2/enqueue", json: body), response.status == 202 {
                            let answered = ContinuousClock.now
                            state.withLockedValue {
                                $0.acknowledged.insert(.init(dedupKey: key, action: "trigger"))
                                $0.answers.append((sent, answered))
                            }
                            break
                        }
                        try? await Task.sleep(for: .milliseconds(20))
                    }
                }
            }
        }
    }

    /// When the first request sent after `instant` was answered 202.
    func firstAccepted(sentAfter instant: ContinuousClock.Instant) -> ContinuousClock.Instant? {
        state.withLockedValue { $0.answers.filter { $0.sent >= instant }.map(\.answered).min() }
    }

    func stop() async -> Set<DeliveryAudit.Acknowledged> {
        state.withLockedValue { $0.stopping = true }
        for task in tasks { await task.value }
        try? await client.shutdown()
        return state.withLockedValue { $0.acknowledged }
    }
}
