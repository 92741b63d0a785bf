import ClusterHarness
import Foundation
import MockPagerDuty
import RelayTestSupport
import Testing

extension OperatorToolTests {
    /// `pdrelay drill` and `pdrelay status` as an operator runs them against a live three-node
    /// cluster: a handover and a `kill -9` drill each pass, the mock saw every canary in order, and
    /// every node's `/v1/status` shows both drills, recorded in the replicated state.
    @Suite struct DrillTests {
        static let token = "drill-admin-token-0123456789"

        @Test func aHandoverDrillAndAKill9DrillPassAndAreRecordedOnEveryNode() async throws {
            try await ClusterRig.run(extraSettings: ["admin_token: \(Self.token)"]) { rig in
                let urls = LocalCluster.nodes.flatMap { ["--url", rig.cluster.nodeURL($0)] }
                let key = TestSupport.routingKey(9)
                let environment = ["PDRELAY_ADMIN_TOKEN": Self.token]

                let status = try await CommandResult.run("pdrelay", ["status"] + urls)
                #expect(status.status == 0, "\(status.stdout) \(status.stderr)")
                for node in LocalCluster.nodes { #expect(status.stdout.contains(rig.cluster.nodeURL(node))) }
                #expect(status.stdout.contains("leader"))

                let soft = try await CommandResult.run(
                    "pdrelay", ["drill", "--routing-key", key, "--objective-seconds", "15"] + urls, environment: environment)
                #expect(soft.status == 0 && soft.stdout.hasPrefix("PASS: handover"), "\(soft.stdout) \(soft.stderr)")

                // PDRELAY_DRILL_ROUNDS=10 repeats the kill -9 drill, for the median failover time.
                let rounds = ProcessInfo.processInfo.environment["PDRELAY_DRILL_ROUNDS"].flatMap { Int($0) } ?? 1
                var outputs = [soft.stdout]
                for _ in 0..<rounds {
                    let leader = try await rig.leader()
                    let hard = try await CommandResult.run(
                        "pdrelay", ["drill", "--hard", "--routing-key", key, "--objective-seconds", "15"] + urls, environment: environment)
                    #expect(hard.status == 0 && hard.stdout.hasPrefix("PASS: kill -9"), "\(hard.stdout) \(hard.stderr)")
                    outputs.append(hard.stdout)
                    #expect(!LocalCluster.isAlive(rig.cluster.pid(leader) ?? 0), "the hard drill did not kill node \(leader)")
                    try await rig.cluster.start(leader)
                    try await rig.waitUntilReady(LocalCluster.nodes)
                }
                print("drills:\n\(outputs.joined())")

                // The mock's own view: every canary incident's trigger arrived before its resolve.
                let canaries = await rig.upstream.deliveries.filter { $0.status == 202 && ($0.dedupKey ?? "").hasPrefix("pdrelay-drill-") }
                let keys = Set(canaries.compactMap(\.dedupKey))
                #expect(keys.count == 10 * (1 + rounds), "drills of 10 canaries: \(keys.count)")
                for key in keys {
                    let actions = canaries.filter { $0.dedupKey == key }.compactMap(\.action)
                    #expect(
                        actions.first == "trigger" && actions.last == "resolve" && Set(actions) == ["trigger", "resolve"],
                        "\(key): \(actions)")
                }

                for node in LocalCluster.nodes {
                    try await ClusterRig.waitUntil("node \(node) shows the drills") {
                        let drills = (try? await rig.nodes[node]!.get("/v1/status").json)?["drills"] as? [[String: Any]] ?? []
                        return drills.count == min(10, 1 + rounds) && drills.allSatisfy { $0["passed"] as? Bool == true }
                            && drills.contains { $0["hard"] as? Bool == true }
                            && (rounds >= 10 || drills.contains { $0["hard"] as? Bool == false })
                    }
                }
            }
        }
    }
}
