import ClusterHarness
import Foundation
import MockPagerDuty
import RelayClient
import RelayTestSupport
import Testing

/// Noise control across three real nodes: every node gives the same answers, before and after a
/// `kill -9` of the leader.
@Suite struct NoiseControlClusterTests {
    @Test func everyNodeBuildsTheSameTemplatedKeyBeforeAndAfterTheLeaderIsKilled() async throws {
        try await ClusterRig.run(extraSettings: [#"dedup_key_templates: {"*": "{source}/{component}"}"#]) { rig in
            func trigger(_ summary: String) -> [UInt8] {
                TestSupport.alert(extra: ["payload": ["summary": summary, "source": "plc-7", "severity": "error", "component": "pump-2"]])
            }
            func key(of response: RelayResponse) -> String? { response.json?["dedup_key"] as? String }
            var keys: [String?] = []
            for node in LocalCluster.nodes {
                let response = try await rig.nodes[node]!.post("/v2/enqueue", json: trigger("pressure low, seen by node \(node)"))
                #expect(response.status == 202)
                keys.append(key(of: response))
            }
            let leader = try await rig.leader()
            await rig.cluster.kill9(leader)
            let survivor = try await rig.leader(otherThan: leader)
            var afterKill: RelayResponse?
            try await ClusterRig.waitUntil("a 202 from the new leader") {
                afterKill = try? await rig.nodes[survivor]!.post("/v2/enqueue", json: trigger("after the kill"))
                return afterKill?.status == 202
            }
            keys.append(afterKill.flatMap(key))
            #expect(keys == Array(repeating: "plc-7/pump-2", count: 4))
            // The resolve, by the key every node gave, is the marker: a key's events go out in
            // order, so every trigger has reached the upstream once it has.
            let resolve = try await rig.nodes[survivor]!.post("/v2/enqueue", json: TestSupport.alert("resolve", dedupKey: "plc-7/pump-2"))
            #expect(resolve.status == 202)
            try await ClusterRig.waitUntil("the resolve delivered") {
                await rig.upstream.accepted.contains { $0.action == "resolve" && $0.dedupKey == "plc-7/pump-2" }
            }
            let delivered = await rig.upstream.accepted.filter { $0.dedupKey == "plc-7/pump-2" }
            // A queued trigger may be replaced by a later one of the same key (coalescing), so
            // not every summary need arrive; the last trigger's must, and nothing else.
            let summaries = Set(delivered.compactMap { ($0.json?["payload"] as? [String: Any])?["summary"] as? String })
            let sent = Set(LocalCluster.nodes.map { "pressure low, seen by node \($0)" } + ["after the kill"])
            #expect(summaries.contains("after the kill"))
            #expect(summaries.isSubset(of: sent), "\(summaries)")
            #expect(delivered.last?.action == "resolve")
        }
    }
}
