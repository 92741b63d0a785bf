import RelayCore
import Testing

@testable import LoadTestKit

@Suite struct WorkloadTests {
    func workload(connections: Int = 4, dedupKeys: Int = 10, maxEvents: Int = 1_000, sizes: ClosedRange<Int> = 300...3_000) -> Workload {
        Workload(
            pacing: .closedLoop, connections: connections, dedupKeys: dedupKeys, routingKeys: 3,
            mix: ActionMix(trigger: 6, acknowledge: 2, resolve: 2), payloadBytes: sizes, durationSeconds: 5, maxEvents: maxEvents,
            seed: 7, runID: "test")
    }

    @Test(arguments: [0, 1, 2] as [UInt8], [300, 600, 5_000, 50_000])
    func everyEventPassesPagerDutysRulesAtTheSizeAsked(action: UInt8, bytes: Int) throws {
        let factory = EventFactory(runID: "abc", routingKeys: 5)
        let body = factory.body(incident: 42, sequence: 9, action: action, bytes: bytes)
        #expect(body.count == bytes)
        let event = try EventValidator.validate(body: body, api: .v2Alert).get()
        #expect(event.dedupKey == "lt-abc-42")
        #expect(event.routingKey.count == 32)
        #expect(event.action.rawValue == ActionMix.actions[Int(action)])
        let json = try JSONValue.parse(body)
        #expect(json["payload"]?["custom_details"]?["sequence"] == .integer(9))
    }

    @Test func dedupKeysNameTheirIncidentAndOnlyThisRunsKeysAreRecognised() {
        let factory = EventFactory(runID: "run1", routingKeys: 2)
        #expect(factory.incident(dedupKey: factory.dedupKey(incident: 17)) == 17)
        #expect(factory.incident(dedupKey: EventFactory(runID: "run2", routingKeys: 2).dedupKey(incident: 17)) == nil)
        #expect(factory.routingKey(incident: 0) != factory.routingKey(incident: 1))
        #expect(factory.routingKey(incident: 0) == factory.routingKey(incident: 2))
    }

    @Test func eachConnectionOwnsItsIncidentsAndNumbersTheirEventsInOrder() {
        let workload = workload(connections: 3, dedupKeys: 8, maxEvents: 30)
        var owners: [Int: Int] = [:]
        var lastSequence: [Int: Int] = [:]
        var total = 0
        for connection in 0..<3 {
            var schedule = EventSchedule(connection: connection, workload: workload)
            while let event = schedule.next() {
                total += 1
                #expect(owners[event.incident, default: connection] == connection, "incident \(event.incident) has one owner")
                owners[event.incident] = connection
                #expect(event.sequence == (lastSequence[event.incident] ?? 0) + 1, "sequences go up by one per incident")
                lastSequence[event.incident] = event.sequence
                #expect(workload.payloadBytes.contains(event.bytes))
            }
        }
        #expect(total == 30, "the connections together send exactly maxEvents")
        #expect(Set(owners.keys) == Set(0..<8), "every incident is used")
    }

    @Test func theSameSeedReplaysTheSameActionsAndSizes() {
        func events(seed: UInt64) -> [String] {
            var workload = workload()
            workload.seed = seed
            var schedule = EventSchedule(connection: 1, workload: workload)
            return (0..<50).compactMap { _ in schedule.next().map { "\($0.action)/\($0.bytes)" } }
        }
        #expect(events(seed: 3) == events(seed: 3))
        #expect(events(seed: 3) != events(seed: 4))
    }

    @Test func theMixIsHonoured() {
        var workload = workload(connections: 1, dedupKeys: 1, maxEvents: 10_000)
        workload.mix = ActionMix(trigger: 1, acknowledge: 0, resolve: 3)
        var schedule = EventSchedule(connection: 0, workload: workload)
        var counts = [0, 0, 0]
        while let event = schedule.next() { counts[Int(event.action)] += 1 }
        #expect(counts[1] == 0)
        #expect((2_300...2_700).contains(counts[0]), "about a quarter triggers: \(counts)")
    }

    @Test func openLoopSlotsInterleaveTheConnectionsAtTheRate() {
        let workload = workload(connections: 4)
        let schedules = (0..<4).map { EventSchedule(connection: $0, workload: workload) }
        let slots = (0..<3).flatMap { index in schedules.map { $0.dueNanoseconds(index: index, eventsPerSecond: 100) } }.sorted()
        #expect(slots == (0..<12).map { Int64($0) * 10_000_000 })
    }

    @Test func badSettingsAreRefusedWithReasons() throws {
        #expect(workload().problems().isEmpty)
        #expect(workload(connections: 8, dedupKeys: 4).problems().contains { $0.contains("at least the connections") })
        #expect(workload(sizes: 100...200).problems().contains { $0.contains("payload bytes") })
        var open = workload()
        open.pacing = .openLoop(eventsPerSecond: 0)
        #expect(open.problems().contains { $0.contains("open-loop rate") })
        #expect(throws: LoadTestError.self) { try ActionMix(parsing: "1:2") }
        #expect(throws: LoadTestError.self) { try ActionMix(parsing: "0:0:0") }
        #expect(try ActionMix(parsing: "6:2:2") == ActionMix(trigger: 6, acknowledge: 2, resolve: 2))
    }

    @Test func chaosEventsAreReadAndBadOnesRefused() throws {
        #expect(try ChaosEvent(parsing: "kill9:leader@20+2") == ChaosEvent(action: .kill9, target: .leader, atSeconds: 20, holdSeconds: 2))
        #expect(try ChaosEvent(parsing: "sigstop:2@5") == ChaosEvent(action: .sigstop, target: .node(2), atSeconds: 5, holdSeconds: 3))
        #expect(try ChaosEvent(parsing: "sigterm:random@1.5").holdSeconds == 2)
        for bad in ["kill:leader@1", "kill9:leader", "kill9:boss@1", "kill9:leader@-1", "kill9:0@1", "sigstop:leader@1+x"] {
            #expect(throws: LoadTestError.self, "\(bad)") { try ChaosEvent(parsing: bad) }
        }
    }
}
