import Foundation
import MockPagerDuty
import RelayClient
import RelayProcess
import RelayTestSupport
import Testing

/// A 202 is a promise: the event is on disk. Killing the process with SIGKILL right after the
/// answers must not lose one.
@Suite(.serialized) struct CrashRecoveryTests {
    @Test func everyAcknowledgedEventIsDeliveredAfterKill9AndRestart() async throws {
        let upstream = MockPagerDuty()
        try await upstream.start()
        // Nothing gets through before the kill, so every event is still queued when it dies.
        await upstream.setDefaultReply(.status(503))
        let data = TestSupport.temporaryDirectory("kill9") + "/data"
        let first = try await RelayProcess(dataDirectory: data, upstreamURL: await upstream.baseURL)
        let count = 300
        let acknowledged = try await RelayClient.with(baseURL: first.url) { client in
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
        first.kill9()
        #expect(acknowledged.count == count)
        #expect(await upstream.accepted.isEmpty)

        await upstream.setDefaultReply(.accept)
        let second = try await RelayProcess(dataDirectory: data, upstreamURL: await upstream.baseURL)
        let delivered = try await upstream.waitForAccepted(count, timeout: .seconds(60))
        #expect(Set(delivered.compactMap(\.dedupKey)) == acknowledged)
        #expect(second.terminate() == 0)
        #expect(second.log.contains("pending=\(count)"))
        await upstream.stop()
    }
}
