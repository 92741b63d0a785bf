import Foundation
import MockPagerDuty
import Testing

@testable import LoadTestKit

/// The generator and the mock upstream together, over real loopback HTTP.
@Suite(.serialized) struct GeneratorTests {
    /// The request timeout is generous: the mock shares this process with the simulator tests,
    /// which can starve it for seconds (a full run once lost 2 of 200 events to a 2-s timeout).
    /// The frozen-server test sets its own.
    func workload(_ pacing: Workload.Pacing, seconds: Double = 1, connections: Int = 4, maxEvents: Int = 100_000) -> Workload {
        Workload(
            pacing: pacing, connections: connections, dedupKeys: 16, routingKeys: 2, mix: ActionMix(trigger: 1, acknowledge: 1, resolve: 1),
            payloadBytes: 300...1_000, durationSeconds: seconds, maxEvents: maxEvents, requestTimeoutSeconds: 15, runID: "gen")
    }

    @Test func openLoopSendsEveryDueEventAndTheMockRecordsEachBySequence() async throws {
        let mock = MockPagerDuty(recordsBodies: false)
        try await mock.start()
        let generator = try Generator(url: await mock.baseURL, workload: workload(.openLoop(eventsPerSecond: 200)))
        let start = ContinuousClock.now
        let sent = await generator.run(start: start)
        let deliveries = await mock.deliveries(since: 0)
        await mock.stop()

        #expect(sent.count == 200, "200 slots are due in one second at 200/s")
        #expect(sent.allSatisfy { $0.accepted })
        #expect(Set(deliveries.compactMap(\.sequence)).count > 1)
        let factory = EventFactory(runID: "gen", routingKeys: 2)
        let records = deliveries.map { delivery in
            UpstreamRecord(
                incident: Int32(factory.incident(dedupKey: delivery.dedupKey!)!), sequence: Int32(delivery.sequence!),
                action: delivery.action!, status: delivery.status, term: nil, receivedNanoseconds: (delivery.receivedAt - start).nanoseconds
            )
        }
        let audit = SequenceAudit(sent: sent, upstream: records)
        #expect(audit.isClean)
        #expect(audit.deliveredDirectly == 200)
        // Due times are the schedule's, not when the sends happened to go out.
        #expect(sent.map(\.dueNanoseconds).sorted() == (0..<200).map { Int64($0) * 5_000_000 })
    }

    @Test func closedLoopStopsAtTheCountBound() async throws {
        let mock = MockPagerDuty(recordsBodies: false)
        try await mock.start()
        let sent = try await Generator(url: await mock.baseURL, workload: workload(.closedLoop, seconds: 30, maxEvents: 50)).run(
            start: .now)
        await mock.stop()
        #expect(sent.count == 50)
        #expect(sent.allSatisfy { $0.accepted })
    }

    @Test func aServerThatIsNotThereCostsFailedEventsNotTheRun() async throws {
        let start = ContinuousClock.now
        let sent = try await Generator(url: "http://127.0.0.1:9", workload: workload(.openLoop(eventsPerSecond: 40), connections: 2))
            .run(start: start)
        #expect(!sent.isEmpty)
        #expect(sent.allSatisfy { $0.status == 0 })
        #expect(ContinuousClock.now - start < .seconds(30), "the run ends although nothing answers")
    }

    @Test func aFrozenServerTimesOutAndTheRunStillEnds() async throws {
        let mock = MockPagerDuty(recordsBodies: false)
        try await mock.start()
        await mock.setDefaultReply(.delayed(milliseconds: 3_000, .accept))
        var frozen = workload(.openLoop(eventsPerSecond: 10), connections: 2)
        frozen.requestTimeoutSeconds = 0.5
        let start = ContinuousClock.now
        let sent = try await Generator(url: await mock.baseURL, workload: frozen).run(start: start)
        let elapsed = ContinuousClock.now - start
        await mock.setDefaultReply(.accept)
        await mock.stop()
        #expect(sent.allSatisfy { $0.status == 0 })
        #expect(elapsed < .seconds(30), "the run ends although nothing answers")
    }

    @Test func onlyLoopbackIsATarget() {
        #expect(throws: LoadTestError.self) { try Generator(url: "http://10.0.0.1:8081", workload: workload(.closedLoop)) }
        #expect(throws: LoadTestError.self) { try Generator(url: "http://example.com:80", workload: workload(.closedLoop)) }
        #expect((try? Generator(url: "http://127.0.0.1:8081", workload: workload(.closedLoop))) != nil)
    }

    @Test func upstreamFaultsHitTheirShareOfRequestsWithinTheirWindow() async throws {
        let mock = MockPagerDuty(recordsBodies: false)
        try await mock.start()
        await mock.setFaults([try FaultRule(parsing: "429:0.25"), try FaultRule(parsing: "503@100-200")])
        let sent = try await Generator(url: await mock.baseURL, workload: workload(.closedLoop, seconds: 30, maxEvents: 40)).run(
            start: .now)
        let statuses = await mock.deliveries(since: 0).map(\.status)
        await mock.stop()
        #expect(statuses.filter { $0 == 429 }.count == 10, "every fourth request")
        #expect(!statuses.contains(503), "the 503 window has not begun")
        #expect(sent.filter { $0.status == 429 }.count == 10)
    }

    @Test func faultRulesAreReadAndBadOnesRefused() throws {
        let slow = try FaultRule(parsing: "slow=300:0.1@5-10")
        #expect(slow == FaultRule(reply: .delayed(milliseconds: 300, .accept), share: 0.1, windowSeconds: 5...10))
        #expect(try FaultRule(parsing: "429").reply == .status(429, retryAfterSeconds: 1))
        #expect(try FaultRule(parsing: "hang:0.5").share == 0.5)
        for bad in ["200", "429:2", "503@5", "503@9-3", "slow=0", "teapot"] {
            #expect(throws: FaultRuleError.self, "\(bad)") { try FaultRule(parsing: bad) }
        }
    }
}
