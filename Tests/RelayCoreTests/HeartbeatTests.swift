import RelayTestSupport
import Testing

@testable import RelayCore

/// Heartbeats through the state machine's commands, and the leader's timer.
@Suite struct HeartbeatTests {
    var machine = RelayStateMachine(limits: .init(maxQueuedEvents: 100, maxDedupKeys: 200))
    var now: Int64 = 1_000_000
    let routingKey = TestSupport.routingKey()

    @discardableResult
    mutating func apply(_ command: RelayCommand) -> CommandResult {
        now += 10
        var effects = RelayStateMachine.Effects()
        return machine.apply(command, effects: &effects)
    }

    mutating func create(_ name: String = "nightly-backup", interval: Int64 = 60_000, grace: Int64 = 30_000) {
        let result = apply(
            .putHeartbeat(
                name: name, .init(routingKey: routingKey, intervalMilliseconds: interval, graceMilliseconds: grace, source: "backup-01"),
                atMilliseconds: now))
        guard case .heartbeatSaved = result else { preconditionFailure("\(result)") }
    }

    var queued: [String] { machine.events(matching: EventFilter(), limit: .max).map { "\($0.key.dedupKey):\($0.action.rawValue)" } }

    @Test mutating func aMissTriggersAndTheNextCheckInResolvesTheSameIncident() {
        create()
        guard
            case .heartbeatUpdated = apply(
                .checkIn(name: "nightly-backup", routingKey: routingKey, intervalMilliseconds: 60_000, atMilliseconds: now))
        else {
            Issue.record("the check-in was refused")
            return
        }
        guard case .heartbeatUpdated(let missed) = apply(.heartbeatMissed(name: "nightly-backup", checkIns: 1, atMilliseconds: now)) else {
            Issue.record("the miss was not applied")
            return
        }
        #expect(missed.alarmed && missed.alarms == 1)
        // A second miss for the same count is a no-op: the alarm is open.
        guard case .heartbeatRefused = apply(.heartbeatMissed(name: "nightly-backup", checkIns: 1, atMilliseconds: now)) else {
            Issue.record("a second alarm was raised")
            return
        }
        guard
            case .heartbeatUpdated(let back) = apply(
                .checkIn(name: "nightly-backup", routingKey: routingKey, intervalMilliseconds: nil, atMilliseconds: now))
        else {
            Issue.record("the check-in was refused")
            return
        }
        #expect(!back.alarmed && back.checkIns == 2)
        #expect(queued == ["pdrelay-heartbeat/nightly-backup:trigger", "pdrelay-heartbeat/nightly-backup:resolve"])
        let trigger = machine.events(matching: EventFilter(), limit: 1)[0]
        let body = String(decoding: trigger.body, as: UTF8.self)
        #expect(body.contains("Heartbeat nightly-backup missed") && body.contains(#""severity":"critical""#) && body.contains("backup-01"))
        #expect(machine.folder(for: OrderingKey(routingKey: routingKey, dedupKey: "pdrelay-heartbeat/nightly-backup"))?.state == .resolved)
    }

    @Test mutating func aMissForAnOlderCheckInCountIsANoOp() {
        create()
        apply(.checkIn(name: "nightly-backup", routingKey: routingKey, intervalMilliseconds: nil, atMilliseconds: now))
        // The leader's timer saw 0 check-ins; one was applied before its proposal.
        guard case .heartbeatRefused(let error) = apply(.heartbeatMissed(name: "nightly-backup", checkIns: 0, atMilliseconds: now)) else {
            Issue.record("a stale miss raised an alarm")
            return
        }
        #expect(error.kind == .conflict)
        #expect(queued.isEmpty)
    }

    @Test mutating func checkInsAreAuthorisedByTheRoutingKeyAndRefusalsChangeNothing() {
        create()
        let refusals: [(RelayCommand, OperatorError.Kind)] = [
            (
                .checkIn(name: "nightly-backup", routingKey: TestSupport.routingKey(4), intervalMilliseconds: nil, atMilliseconds: now),
                .forbidden
            ),
            (.checkIn(name: "nightly-backup", routingKey: routingKey, intervalMilliseconds: 30_000, atMilliseconds: now), .conflict),
            (.checkIn(name: "unknown", routingKey: routingKey, intervalMilliseconds: nil, atMilliseconds: now), .unknown),
        ]
        for (command, kind) in refusals {
            guard case .heartbeatRefused(let error) = apply(command) else {
                Issue.record("\(command) was applied")
                continue
            }
            #expect(error.kind == kind)
        }
        #expect(machine.sortedHeartbeats.first?.checkIns == 0)
    }

    @Test mutating func badHeartbeatsAreRefused() {
        func refused(_ name: String, _ spec: Heartbeat.Spec) -> Bool {
            var effects = RelayStateMachine.Effects()
            if case .heartbeatRefused = machine.apply(.putHeartbeat(name: name, spec, atMilliseconds: 0), effects: &effects) { return true }
            return false
        }
        let good = Heartbeat.Spec(routingKey: routingKey, intervalMilliseconds: 60_000, graceMilliseconds: 0, source: "x")
        #expect(refused("has space", good))
        #expect(refused("", good))
        var spec = good
        spec.intervalMilliseconds = 1_000
        #expect(refused("ok", spec))
        spec = good
        spec.routingKey = "not a key!"
        #expect(refused("ok", spec))
        spec = good
        spec.graceMilliseconds = -1
        #expect(refused("ok", spec))
        #expect(!refused("ok", good))
    }

    @Test mutating func deletingAnAlarmedHeartbeatResolvesItsIncident() {
        create()
        apply(.heartbeatMissed(name: "nightly-backup", checkIns: 0, atMilliseconds: now))
        guard case .heartbeatDeleted = apply(.deleteHeartbeat(name: "nightly-backup", atMilliseconds: now)) else {
            Issue.record("not deleted")
            return
        }
        #expect(queued == ["pdrelay-heartbeat/nightly-backup:trigger", "pdrelay-heartbeat/nightly-backup:resolve"])
        #expect(machine.sortedHeartbeats.isEmpty)
    }

    @Test func theWatchRestartsInFullOnANewLeaderAndOnEachCheckIn() {
        var heartbeat = Heartbeat(
            name: "h", spec: .init(routingKey: "r", intervalMilliseconds: 60_000, graceMilliseconds: 10_000, source: "s"),
            createdAtMilliseconds: 0)
        var watch = HeartbeatWatch()
        #expect(watch.due([heartbeat], isLeader: true, nowMilliseconds: 0).isEmpty)
        #expect(watch.due([heartbeat], isLeader: true, nowMilliseconds: 69_999).isEmpty)
        #expect(watch.due([heartbeat], isLeader: true, nowMilliseconds: 70_000).map(\.name) == ["h"])
        // A check-in starts the period again.
        heartbeat.checkIns = 1
        #expect(watch.due([heartbeat], isLeader: true, nowMilliseconds: 70_000).isEmpty)
        #expect(watch.due([heartbeat], isLeader: true, nowMilliseconds: 139_999).isEmpty)
        // Losing leadership forgets the timers; leading again gives the full period from then.
        #expect(watch.due([heartbeat], isLeader: false, nowMilliseconds: 130_000).isEmpty)
        #expect(watch.due([heartbeat], isLeader: true, nowMilliseconds: 135_000).isEmpty)
        #expect(watch.due([heartbeat], isLeader: true, nowMilliseconds: 204_999).isEmpty)
        #expect(watch.due([heartbeat], isLeader: true, nowMilliseconds: 205_000).map(\.checkIns) == [1])
        // An open alarm is not raised again.
        heartbeat.alarmed = true
        #expect(watch.due([heartbeat], isLeader: true, nowMilliseconds: 300_000).isEmpty)
    }
}
