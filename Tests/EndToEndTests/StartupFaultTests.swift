import Foundation
import MockPagerDuty
import RelayClient
import RelayProcess
import RelayTestSupport
import Testing

/// Operator mistakes at startup fail fast, with one clear line, and touch nothing: a second
/// process on a live node's data directory, and a node whose port is taken.
@Suite(.serialized, RelayLoad.node) struct StartupFaultTests {
    /// A data directory whose queue holds one event, left by a node the upstream refused (the
    /// upstream keeps refusing until the caller says otherwise).
    func dataDirectoryWithAQueuedEvent(_ name: String, upstream: MockPagerDuty) async throws -> String {
        await upstream.setDefaultReply(.status(503))
        let data = TestSupport.temporaryDirectory(name) + "/data"
        let earlier = try await RelayProcess(dataDirectory: data, upstreamURL: await upstream.baseURL)
        try await RelayClient.with(baseURL: earlier.url) { client in
            let response = try await client.post("/v2/enqueue", json: TestSupport.alert(dedupKey: "queued-before"))
            #expect(response.status == 202)
        }
        #expect(await earlier.terminate() == 0)
        return data
    }

    @Test func aSecondProcessOnALiveDataDirectoryIsRefusedAndTheFirstKeepsDelivering() async throws {
        let upstream = MockPagerDuty()
        try await upstream.start()
        let data = TestSupport.temporaryDirectory("lock") + "/data"
        let first = try await RelayProcess(dataDirectory: data, upstreamURL: await upstream.baseURL)
        let second = try await CommandResult.run(
            "pdrelay", ["serve"],
            environment: [
                "PDRELAY_DATA_DIRECTORY": data, "PDRELAY_LISTEN_PORT": "0", "PDRELAY_UPSTREAM_URL": await upstream.baseURL,
            ])
        #expect(second.status != 0)
        #expect(
            second.stderr.contains("the data directory \(data) is in use by another pdrelay process (pid \(first.pid))"), "\(second.stderr)"
        )
        #expect(!second.stderr.contains("role changed"), "the second process started an engine")
        // The first node never noticed: it still takes and delivers events.
        try await RelayClient.with(baseURL: first.url) { client in
            // A starved test process may read the request late and be told 503 to retry it.
            let response = try await client.postRetrying("/v2/enqueue", json: TestSupport.alert(dedupKey: "after-the-refusal"))
            #expect(response.status == 202)
        }
        let missing = await upstream.waitUntilDelivered(dedupKeys: ["after-the-refusal"], timeout: .seconds(30))
        #expect(missing.isEmpty)
        #expect(await first.terminate() == 0)
        await upstream.stop()
    }

    @Test func aNodeWhosePortIsTakenExitsQuicklyHavingDeliveredNothing() async throws {
        let upstream = MockPagerDuty()
        try await upstream.start()
        let data = try await dataDirectoryWithAQueuedEvent("port", upstream: upstream)
        await upstream.setDefaultReply(.accept)
        let requestsBefore = await upstream.deliveries.count

        // Another node holds the port the restarted one wants.
        let squatter = try await RelayProcess(
            dataDirectory: TestSupport.temporaryDirectory("squatter") + "/data", upstreamURL: await upstream.baseURL)
        let started = ContinuousClock.now
        let result = try await CommandResult.run(
            "pdrelay", ["serve"],
            environment: [
                "PDRELAY_DATA_DIRECTORY": data, "PDRELAY_LISTEN_PORT": String(squatter.port),
                "PDRELAY_UPSTREAM_URL": await upstream.baseURL,
            ])
        let elapsed = ContinuousClock.now - started
        #expect(result.status != 0)
        // Issue #10's bound. Unloaded it takes about 0.1 s; it passed at 1.9 s for the whole test on CI.
        #expect(elapsed < .seconds(2), "took \(elapsed) to give up")
        #expect(result.stderr.contains("pdrelay: stopped: cannot listen: an address is already in use"), "\(result.stderr)")
        #expect(!result.stderr.contains("role changed"), "the engine ran: \(result.stderr)")
        // It is gone, so nothing of it can still be on its way: the upstream saw no request.
        #expect(await upstream.deliveries.count == requestsBefore)
        #expect(await squatter.terminate() == 0)
        await upstream.stop()
    }

    @Test func aStoreThatReadsBackDamagedStopsTheNodeWithTheReason() async throws {
        let upstream = MockPagerDuty()
        try await upstream.start()
        let data = try await dataDirectoryWithAQueuedEvent("damaged", upstream: upstream)
        // Damage the file as no write of the store ever leaves it: an applied index with no term.
        let edit = try await CommandResult.run(
            "/usr/bin/sqlite3", [data + "/pdrelay.sqlite", "UPDATE meta SET value = 0 WHERE name = 'applied_term'"], environment: [:])
        #expect(edit.status == 0, "\(edit.stderr)")

        let damaged = try await CommandResult.run(
            "pdrelay", ["serve"],
            environment: ["PDRELAY_DATA_DIRECTORY": data, "PDRELAY_LISTEN_PORT": "0", "PDRELAY_UPSTREAM_URL": await upstream.baseURL])
        #expect(damaged.status != 0)
        #expect(damaged.stderr.contains("with applied term 0"), "\(damaged.stderr.suffix(3_000))")
        #expect(!damaged.stderr.contains("role changed"), "the engine ran on a damaged store")
        await upstream.stop()
    }
}
