import Foundation
import MockPagerDuty
import RelayClient
import RelayProcess
import RelayTestSupport
import Testing

/// A 202 is a promise: the event is on disk. Killing the process with SIGKILL right after the
/// answers must not lose one.
@Suite(.serialized, RelayLoad.node) struct CrashRecoveryTests {
    @Test func everyAcknowledgedEventIsDeliveredAfterKill9AndRestart() async throws {
        let upstream = MockPagerDuty()
        try await upstream.start()
        // Nothing gets through before the kill, so every event is still queued when it dies.
        await upstream.setDefaultReply(.status(503))
        let data = TestSupport.temporaryDirectory("kill9") + "/data"
        let first = try await RelayProcess(dataDirectory: data, upstreamURL: await upstream.baseURL)
        let count = 300
        // 300 requests at once over a few connections: on a loaded machine they queue for a
        // while (beside a simulator sweep, longer than the command line's 5-s wait for a
        // connection), and this test is about what survives, not how fast.
        let acknowledged = try await RelayClient.with(baseURL: first.url, timeoutMilliseconds: 60_000, connectTimeoutMilliseconds: 60_000) {
            client in
            try await withThrowingTaskGroup(of: String?.self) { group in
                for index in 0..<count {
                    group.addTask {
                        let response = try await client.post("/v2/enqueue", json: TestSupport.alert(dedupKey: "crash-\(index)"))
                        return response.status == 202 ? response.json?["dedup_key"] as? String : nil
                    }
                }
                return try await group.reduce(into: Set<String>()) { if let key = $1 { $0.insert(key) } }
            }
        }
        await first.kill9()
        #expect(acknowledged.count == count)
        #expect(await upstream.accepted.isEmpty)

        await upstream.setDefaultReply(.accept)
        let second = try await RelayProcess(dataDirectory: data, upstreamURL: await upstream.baseURL)
        // By key, not by count: a request the first process wrote just before it died can reach
        // the mock after its answer turned to 202, and the second process sends that event again
        // (at least once). Such copies are bounded by what can be in flight at the kill.
        let missing = await upstream.waitUntilDelivered(dedupKeys: acknowledged, timeout: .seconds(60))
        #expect(missing.isEmpty, "acknowledged but never delivered: \(missing.sorted())")
        let copies = await upstream.accepted.count - acknowledged.count
        #expect(copies <= 128, "\(copies) extra copies, more than delivery_concurrency (128) could have in flight")
        #expect(await second.terminate() == 0)
        #expect(second.log.contains("pending=\(count)"))
        await upstream.stop()
    }

    @Test func sigtermLetsDeliveriesInFlightFinishAndRecordsThem() async throws {
        let upstream = MockPagerDuty()
        try await upstream.start()
        await upstream.setDefaultReply(.delayed(milliseconds: 1_500, .accept))
        let data = TestSupport.temporaryDirectory("sigterm") + "/data"
        let node = try await RelayProcess(dataDirectory: data, upstreamURL: await upstream.baseURL)
        try await RelayClient.with(baseURL: node.url) { client in
            for index in 0..<3 {
                let response = try await client.post("/v2/enqueue", json: TestSupport.alert(dedupKey: "inflight-\(index)"))
                #expect(response.status == 202)
            }
        }
        // Wait until all three are in flight (the mock holds each for 1.5 s).
        var inFlight = 0
        for _ in 0..<100 where inFlight < 3 {
            let status = try await RelayClient.with(baseURL: node.url) { try await $0.get("/v1/queue/status") }
            inFlight = status.json?["in_flight"] as? Int ?? 0
            if inFlight < 3 { try await Task.sleep(for: .milliseconds(20)) }
        }
        #expect(inFlight == 3)
        #expect(await upstream.deliveries.isEmpty, "the deliveries should still be in flight")
        #expect(await node.terminate() == 0)
        // The node waited for the answers before it exited.
        #expect(await upstream.accepted.count == 3)
        #expect(node.log.contains("engine stopped"))

        // Their outcomes were committed: a restarted node has nothing left to send.
        await upstream.setDefaultReply(.accept)
        let restarted = try await RelayProcess(dataDirectory: data, upstreamURL: await upstream.baseURL)
        #expect(restarted.log.contains("pending=0"))
        // A later event is the marker: a restarted node starts whatever it holds at once, so a
        // resend of the first three would have reached the mock by the time the marker did.
        try await RelayClient.with(baseURL: restarted.url) { client in
            let response = try await client.post("/v2/enqueue", json: TestSupport.alert(dedupKey: "marker"))
            #expect(response.status == 202)
        }
        let after = try await upstream.waitForAccepted(4)
        #expect(after.map(\.dedupKey).last == "marker")
        #expect(await upstream.deliveries.count == 4)
        #expect(await restarted.terminate() == 0)
        await upstream.stop()
    }
}
