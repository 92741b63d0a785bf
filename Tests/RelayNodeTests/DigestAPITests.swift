import Foundation
import MockPagerDuty
import RelayClient
import RelayTestSupport
import Testing

/// The digest lane through the HTTP API of one node: low-priority triggers are answered 202,
/// filed, and sent as one digest a minute later; a critical one goes at once.
@Suite(RelayLoad.node) struct DigestAPITests {
    @Test func infoTriggersBecomeOneDigestAndACriticalGoesAtOnce() async throws {
        try await TestNode.run(configure: { $0.digestTexts = ["*": "info:60"] }) { node in
            let started = ContinuousClock.now
            for index in 0..<30 {
                let body = TestSupport.alert(
                    dedupKey: "pump-\(index % 5)",
                    extra: ["payload": ["summary": "vibration \(index % 2)", "source": "plc-\(index % 3)", "severity": "info"]])
                let answer = try await node.send(body)
                #expect(answer.status == 202 && answer.json?["dedup_key"] as? String == "pump-\(index % 5)")
            }
            try await node.send(TestSupport.alert(dedupKey: "pump-0", summary: "pump 0 seized"))
            let critical = try await node.upstream.waitForAccepted(until: { $0.dedupKey == "pump-0" })
            #expect(critical.allSatisfy { $0.dedupKey?.hasPrefix("pdrelay-digest/") != true }, "the critical trigger did not wait")
            let folder = try await node.client.get("/v1/incidents/pump-1").json ?? [:]
            #expect(IncidentTests.outcomes(folder) == Array(repeating: "digested", count: 6))

            let delivered = try await node.upstream.waitForAccepted(
                until: { $0.dedupKey?.hasPrefix("pdrelay-digest/") == true }, timeout: .seconds(120))
            let digest = try #require(delivered.last)
            #expect(digest.arrivedAt - started >= .seconds(59), "a digest waits for its interval")
            let details = (digest.json?["payload"] as? [String: Any])?["custom_details"] as? [String: Any] ?? [:]
            #expect(details["events"] as? Int == 30)
            #expect(details["by_source"] as? [String: Int] == ["plc-0": 10, "plc-1": 10, "plc-2": 10])
            #expect(delivered.filter { $0.dedupKey?.hasPrefix("pump") == true && $0.action == "trigger" }.count >= 1)
            #expect(
                !delivered.contains {
                    ($0.json?["payload"] as? [String: Any])?["severity"] as? String == "info" && $0.dedupKey?.hasPrefix("pump") == true
                })
        }
    }
}
