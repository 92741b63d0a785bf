import ClusterHarness
import Foundation
import MockPagerDuty
import RelayClient
import RelayTestSupport
import Testing

/// The slow-link proxy that stands in for netem between zones: what it injects, it injects.
@Suite(RelayLoad.node) struct FaultProxyTests {
    @Test func aLinkAddsItsDelayEachWayAndResetsItsShareOfConnections() async throws {
        let upstream = MockPagerDuty()
        let upstreamPort = try await upstream.start()
        let listenPort = LocalCluster.freeBasePort() + 97
        let proxy = try await FaultProxy.start(
            listenPort: listenPort, targetPort: upstreamPort, conditions: .init(oneWayDelayMilliseconds: 60, jitterMilliseconds: 10))
        // `with` shuts each client down even when a request throws: an HTTP client left open
        // crashes the whole test process.
        let started = ContinuousClock.now
        let status = try await RelayClient.with(baseURL: "http://127.0.0.1:\(listenPort)", timeoutMilliseconds: 5_000) {
            try await $0.post("/v2/enqueue", json: TestSupport.alert(dedupKey: "through-a-slow-link")).status
        }
        let elapsed = ContinuousClock.now - started
        #expect(status == 202)
        // A request and its answer each waited at least the one-way delay.
        #expect(elapsed >= .milliseconds(120), "took \(elapsed)")
        #expect(await upstream.deliveries.count == 1)

        proxy.conditions = .init(resetShare: 1, resetWithinMilliseconds: 1)
        _ = try? await RelayClient.with(baseURL: "http://127.0.0.1:\(listenPort)", timeoutMilliseconds: 2_000) {
            try await $0.post("/v2/enqueue", json: TestSupport.alert(dedupKey: "reset"))
        }
        let deadline = ContinuousClock.now + .seconds(5)
        while proxy.resets == 0, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        #expect(proxy.resets > 0)
        await proxy.stop()
        await upstream.stop()
    }
}
