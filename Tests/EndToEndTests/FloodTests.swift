import Foundation
import MockPagerDuty
import RelayClient
import RelayProcess
import RelayTestSupport
import Testing

/// The flood of issue 12, on a real node against a mock that plays PagerDuty's own rate limit
/// (120 calls a minute per routing key, over a window looking back 60 s) and throttles 5 % of
/// requests besides: 10,000 info triggers over 200 dedup_keys on one routing key, then one
/// critical trigger on another dedup_key. The same flood runs at once against a second node
/// without a budget, for comparison.
@Suite(RelayLoad.nodes(2)) struct FloodTests {
    static let routingKey = TestSupport.routingKey(12)
    static let floodEvents = 10_000
    static let floodKeys = 200
    /// Long enough for PagerDuty's 60-s window to have filled and moved on.
    static let observedSeconds = 65

    struct Figures {
        /// From posting the critical trigger to its arrival upstream; nil if it did not arrive
        /// within a minute.
        var criticalMilliseconds: Int?
        /// Requests of the routing key that reached the upstream after the critical trigger was
        /// posted and before it: the slots it waited for.
        var requestsAhead: Int
        var requests: Int
        var throttled: Int
        var floodAccepted: Int
    }

    @Test func aCriticalEventWaitsAtMostOneSlotBehindAFloodAndTheBudgetAvoidsThrottling() async throws {
        async let budgeted = Self.flood(budgetPerMinute: 120)
        async let unbudgeted = Self.flood(budgetPerMinute: 0)
        let (with, without) = try await (budgeted, unbudgeted)
        print(
            "flood figures: with a budget of 120/min: critical after \(Self.describe(with.criticalMilliseconds)), \(with.requestsAhead) request(s) ahead; "
                + "\(with.throttled) of \(with.requests) requests throttled in \(Self.observedSeconds) s. Without a budget: critical after "
                + "\(Self.describe(without.criticalMilliseconds)), \(without.requestsAhead) ahead; \(without.throttled) of \(without.requests) throttled"
        )
        #expect(with.floodAccepted == Self.floodEvents && without.floodAccepted == Self.floodEvents)
        #expect(with.criticalMilliseconds != nil)
        #expect(with.requestsAhead <= 1, "the critical trigger waited for more than one slot of its routing key")
        #expect(with.throttled < without.throttled)
        // A slot every 500 ms at most, which PagerDuty's limit never refuses: only the mock's
        // deliberate 5 % remain (with room for chance).
        #expect(with.requests <= Self.observedSeconds * 2 + 1)
        #expect(with.throttled <= with.requests / 10 + 2, "\(with.throttled) of \(with.requests) throttled")
    }

    static func describe(_ milliseconds: Int?) -> String { milliseconds.map { "\($0) ms" } ?? "more than 60 s (not seen)" }

    static func flood(budgetPerMinute: Int) async throws -> Figures {
        let upstream = MockPagerDuty(recordsBodies: false)
        try await upstream.start()
        await upstream.setRateLimit(perMinute: 120)
        await upstream.setFaults([try FaultRule(parsing: "429:0.05")])
        let defaults = ["PDRELAY_RETRY_INITIAL_BACKOFF_MILLISECONDS": "1000", "PDRELAY_RETRY_MAX_BACKOFF_MILLISECONDS": "300000"]
        let node = try await RelayProcess(
            dataDirectory: TestSupport.temporaryDirectory("flood-\(budgetPerMinute)") + "/data", upstreamURL: await upstream.baseURL,
            environment: defaults.merging(["PDRELAY_DELIVERY_BUDGET_PER_MINUTE": String(budgetPerMinute)]) { _, new in new })
        let started = ContinuousClock.now
        var figures = try await RelayClient.with(baseURL: node.url, timeoutMilliseconds: 60_000, connectTimeoutMilliseconds: 60_000) {
            client in
            let floodAccepted = try await withThrowingTaskGroup(of: Int.self) { group in
                // Two at a time: a flood of this size in a burst would starve the suites that
                // run beside this one (their nodes refuse requests they read late).
                let senders = 2
                for sender in 0..<senders {
                    group.addTask {
                        var accepted = 0
                        for index in stride(from: sender, to: Self.floodEvents, by: senders) {
                            let body = TestSupport.alert(
                                routingKey: Self.routingKey, dedupKey: "flood-\(index % Self.floodKeys)",
                                extra: ["payload": ["summary": "telemetry \(index)", "source": "sensor-\(index % 7)", "severity": "info"]])
                            if try await client.postRetrying("/v2/enqueue", json: body).status == 202 { accepted += 1 }
                        }
                        return accepted
                    }
                }
                return try await group.reduce(0, +)
            }
            // The leader shows the routing key's incidents waiting for a slot, and the slot.
            if budgetPerMinute > 0, let status = try await client.get("/v1/queue/status").json,
                let row = (status["routing_keys"] as? [[String: Any]])?.first
            {
                #expect((row["waiting_for_slot"] as? Int ?? 0) > 0, "\(row)")
                #expect((row["slot_milliseconds"] as? Int ?? 0) >= 500, "\(row)")
            }
            let posted = ContinuousClock.now
            let critical = try await client.post(
                "/v2/enqueue",
                json: TestSupport.alert(routingKey: Self.routingKey, dedupKey: "pump-station-3", summary: "pump station 3 down"))
            #expect(critical.status == 202)
            let arrival = try await upstream.waitForDelivery(where: { $0.dedupKey == "pump-station-3" })
            let arrivedAt = arrival?.arrivedAt ?? .now
            let ahead = await upstream.deliveries.filter { $0.arrivedAt > posted && $0.arrivedAt < arrivedAt }.count
            return Figures(
                criticalMilliseconds: arrival.map { Int(($0.arrivedAt - posted) / .milliseconds(1)) }, requestsAhead: ahead, requests: 0,
                throttled: 0,
                floodAccepted: floodAccepted)
        }
        // The window is complete once a request that arrived after it has been answered (the
        // mock answers at once, so every earlier one has been recorded by then).
        let windowEnd = started + .seconds(Self.observedSeconds)
        let afterWindow = try await upstream.waitForDelivery(
            where: { $0.arrivedAt > windowEnd }, timeout: .seconds(Self.observedSeconds + 60))
        #expect(afterWindow != nil, "no request after the observed window")
        let deliveries = await upstream.deliveries.filter { $0.arrivedAt <= windowEnd }
        figures.requests = deliveries.count
        figures.throttled = deliveries.filter { $0.status == 429 }.count
        #expect(await node.terminate() == 0)
        await upstream.stop()
        return figures
    }
}
