import RelayTestSupport
import SeededRandom
import Testing

@testable import RelayCore

/// Builds commands the way the node does, from client bytes.
struct Clients {
    var now: Int64 = 1_000_000
    var keyCounter = 0

    mutating func accept(_ body: [UInt8], api: IngestAPI = .v2Alert, after milliseconds: Int64 = 1) -> RelayCommand {
        now += milliseconds
        keyCounter += 1
        let event = try! EventValidator.validate(body: body, api: api).get()
        return .accept(Acceptance(event, assignedKey: "assigned-\(keyCounter)", receivedAtMilliseconds: now))
    }

    func attempt(_ outcome: AttemptRecord.Outcome, status: Int? = 202) -> AttemptRecord {
        AttemptRecord(outcome: outcome, atMilliseconds: now, durationMilliseconds: 5, statusCode: status, detail: "test")
    }
}

@Suite struct StateMachineTests {
    var machine = RelayStateMachine(limits: .init(maxQueuedEvents: 5, maxDedupKeys: 8, duplicateWindowMilliseconds: 60_000))
    var clients = Clients()
    let key = OrderingKey(routingKey: TestSupport.routingKey(), dedupKey: "db-1")

    @discardableResult
    mutating func apply(_ command: RelayCommand) -> (CommandResult, RelayStateMachine.Effects) {
        var effects = RelayStateMachine.Effects()
        let result = machine.apply(command, effects: &effects)
        return (result, effects)
    }

    mutating func send(_ action: String, dedupKey: String = "db-1", summary: String = "s", after: Int64 = 1) -> CommandResult {
        apply(clients.accept(TestSupport.alert(action, dedupKey: dedupKey, summary: summary), after: after)).0
    }

    @Test mutating func eventsAreNumberedAndQueuedPerKeyInOrder() {
        #expect(send("trigger") == .accepted(dedupKey: "db-1", eventNumber: 1))
        #expect(send("resolve") == .accepted(dedupKey: "db-1", eventNumber: 2))
        #expect(machine.head(of: key)?.number == 1)
        #expect(machine.pendingCount == 2)
        apply(.recordAttempt(eventNumber: 1, clients.attempt(.delivered)))
        #expect(machine.head(of: key)?.action == .resolve)
    }

    @Test mutating func onlyANewHeadIsAnnouncedToTheScheduler() {
        let first = apply(clients.accept(TestSupport.alert(dedupKey: "db-1")))
        #expect(first.1.changedKeys == [key])
        let second = apply(clients.accept(TestSupport.alert("resolve", dedupKey: "db-1")))
        #expect(second.1.changedKeys.isEmpty)
        let delivered = apply(.recordAttempt(eventNumber: 1, clients.attempt(.delivered)))
        #expect(delivered.1.changedKeys == [key])
    }

    @Test mutating func aClientRetryWithinTheWindowIsNotANewEvent() {
        #expect(send("trigger") == .accepted(dedupKey: "db-1", eventNumber: 1))
        let retry = apply(clients.accept(TestSupport.alert(dedupKey: "db-1", summary: "s"), after: 59_000))
        #expect(retry.0 == .duplicate(dedupKey: "db-1", eventNumber: 1))
        #expect(retry.1.mutations.isEmpty)
        // The window counts from the first acceptance: a flood gets one event through per window.
        // (Another summary, so that repeat suppression does not hold it back.)
        #expect(send("trigger", summary: "s2", after: 2_000) == .accepted(dedupKey: "db-1", eventNumber: 2))
    }

    @Test mutating func aRetriedKeylessTriggerGetsItsFirstKeyBack() {
        let body = TestSupport.alert(summary: "no key")
        guard case .accepted(let firstKey, _) = apply(clients.accept(body)).0 else { Issue.record("not accepted"); return }
        #expect(firstKey == "assigned-1")
        #expect(apply(clients.accept(body)).0 == .duplicate(dedupKey: firstKey, eventNumber: 1))
        #expect(machine.pendingCount == 1)
        // A different keyless trigger is a new incident.
        #expect(apply(clients.accept(TestSupport.alert(summary: "other"))).0 == .accepted(dedupKey: "assigned-3", eventNumber: 2))
    }

    @Test mutating func aFloodBehindTheHeadIsCoalesced() throws {
        #expect(send("trigger", summary: "1") == .accepted(dedupKey: "db-1", eventNumber: 1))
        // The head may be in flight, so the second trigger queues behind it...
        #expect(send("trigger", summary: "2") == .accepted(dedupKey: "db-1", eventNumber: 2))
        // ...and later ones replace that second one: PagerDuty would only keep the newest anyway.
        #expect(send("trigger", summary: "3") == .coalesced(dedupKey: "db-1", eventNumber: 2))
        #expect(send("trigger", summary: "4") == .coalesced(dedupKey: "db-1", eventNumber: 2))
        #expect(send("resolve") == .accepted(dedupKey: "db-1", eventNumber: 3))
        #expect(send("resolve", summary: "again") == .duplicate(dedupKey: "db-1", eventNumber: 3))
        #expect(machine.pendingCount == 3)
        let second = machine.event(number: 2)!
        #expect(try JSONValue.parse(second.body)["payload"]?["summary"] == .string("4"))
    }

    @Test mutating func aFullQueueRefusesNewEventsAndDropsNothing() {
        for index in 0..<5 {
            #expect(send("trigger", dedupKey: "k\(index)") == .accepted(dedupKey: "k\(index)", eventNumber: UInt64(index + 1)))
        }
        let refused = apply(clients.accept(TestSupport.alert(dedupKey: "k5")))
        #expect(refused.0 == .queueFull)
        #expect(refused.1.mutations.isEmpty)
        #expect(machine.queuedCount == 5)
        apply(.recordAttempt(eventNumber: 1, clients.attempt(.delivered)))
        #expect(send("trigger", dedupKey: "k5") == .accepted(dedupKey: "k5", eventNumber: 6))
    }

    @Test mutating func deadLettersLeaveTheKeysLineAndCountTowardsTheLimit() {
        send("trigger")
        send("acknowledge")
        apply(.recordAttempt(eventNumber: 1, clients.attempt(.retry, status: 500)))
        #expect(machine.event(number: 1)?.attempts == 1)
        #expect(machine.head(of: key)?.number == 1)
        apply(.recordAttempt(eventNumber: 1, clients.attempt(.deadLettered, status: 400)))
        #expect(machine.event(number: 1)?.state == .dead)
        #expect(machine.head(of: key)?.number == 2)
        #expect((machine.pendingCount, machine.deadCount) == (1, 1))
    }

    @Test mutating func retryingADeadEventThatWasSupersededIsRefused() {
        send("trigger")
        apply(.recordAttempt(eventNumber: 1, clients.attempt(.deadLettered, status: 400)))
        send("resolve")
        apply(.recordAttempt(eventNumber: 2, clients.attempt(.delivered)))
        #expect(apply(.retryDead(EventFilter())).0 == .retried(count: 0, superseded: 1))
        #expect(machine.event(number: 1)?.state == .dead)
        // The newest event of its key may be retried.
        send("trigger", dedupKey: "other")
        apply(.recordAttempt(eventNumber: 3, clients.attempt(.deadLettered, status: 400)))
        let (result, effects) = apply(.retryDead(EventFilter(dedupKey: "other")))
        #expect(result == .retried(count: 1, superseded: 0))
        #expect(effects.changedKeys == [OrderingKey(routingKey: key.routingKey, dedupKey: "other")])
        #expect(machine.event(number: 3).map { ($0.state, $0.attempts) } ?? (.dead, 9) == (.pending, 0))
    }

    @Test mutating func purgeForgetsOnlyWhatItSelects() {
        send("trigger", dedupKey: "a")
        send("trigger", dedupKey: "b")
        apply(.recordAttempt(eventNumber: 2, clients.attempt(.deadLettered, status: 400)))
        #expect(apply(.purge(EventFilter(states: [.dead]))).0 == .purged(count: 1))
        #expect(machine.queuedCount == 1)
        #expect(apply(.purge(EventFilter(dedupKey: "a"))).0 == .purged(count: 1))
        #expect(machine.queuedCount == 0)
        // An attempt that finishes after its event was purged changes nothing.
        #expect(apply(.recordAttempt(eventNumber: 1, clients.attempt(.delivered))).0 == .eventGone)
    }

    @Test mutating func idleKeysAreForgottenOldestFirstButBusyKeysNever() {
        send("trigger", dedupKey: "busy")
        for index in 0..<12 {
            send("trigger", dedupKey: "idle\(index)")
            apply(.recordAttempt(eventNumber: UInt64(index + 2), clients.attempt(.delivered)))
        }
        #expect(machine.dedupKeyCount == 8)
        #expect(machine.dedupEntry(for: OrderingKey(routingKey: key.routingKey, dedupKey: "busy")) != nil)
        #expect(machine.dedupEntry(for: OrderingKey(routingKey: key.routingKey, dedupKey: "idle0")) == nil)
        #expect(machine.dedupEntry(for: OrderingKey(routingKey: key.routingKey, dedupKey: "idle11")) != nil)
    }

    @Test func unsafeLimitsAreRefused() {
        #expect(throws: ConfigurationError.self) { try RelayStateMachine.Limits(maxQueuedEvents: 10, maxDedupKeys: 10).validate() }
        #expect(throws: ConfigurationError.self) { try RelayStateMachine.Limits(maxQueuedEvents: 0).validate() }
    }
}

/// The store holds exactly what the mutations say; rebuilding from it must give the same state.
/// Random command sequences check that every change to the state machine is written out.
@Suite struct StateMachineRestoreTests {
    struct Model {
        var events: [UInt64: QueuedEvent] = [:]
        var dedup: [OrderingKey: DedupEntry] = [:]
        var intents: [OrderingKey: DeliveryIntent] = [:]
        var folders: [OrderingKey: IncidentFolder] = [:]
        var windows: [UInt64: MaintenanceWindow] = [:]
        var held: [String: HeldEvent] = [:]
        var nextWindowID: UInt64 = 1
        var heartbeats: [String: Heartbeat] = [:]
        var digests: [String: Digest] = [:]
        var drills: [UInt64: DrillRecord] = [:]
        var next: UInt64 = 1

        mutating func apply(_ mutations: [StoreMutation]) {
            for mutation in mutations {
                switch mutation {
                case .putEvent(let event): events[event.number] = event
                case .deleteEvent(let number): events[number] = nil
                case .putDedup(let entry): dedup[entry.key] = entry
                case .deleteDedup(let key): dedup[key] = nil
                case .appendAttempt: break
                case .setNextEventNumber(let number): next = number
                case .putIntent(let intent): intents[intent.key] = intent
                case .deleteIntent(let key): intents[key] = nil
                case .putFolder(let folder): folders[folder.key] = folder
                case .deleteFolder(let key): folders[key] = nil
                case .putWindow(let window): windows[window.id] = window
                case .deleteWindow(let id): windows[id] = nil
                case .setNextWindowID(let id): nextWindowID = id
                case .putHeld(let event): held["\(event.windowID)/\(event.sequence)"] = event
                case .deleteHeld(let windowID, let sequence): held["\(windowID)/\(sequence)"] = nil
                case .putHeartbeat(let heartbeat): heartbeats[heartbeat.name] = heartbeat
                case .deleteHeartbeat(let name): heartbeats[name] = nil
                case .putDigest(let digest): digests[digest.routingKey] = digest
                case .deleteDigest(let routingKey): digests[routingKey] = nil
                case .putDrill(let drill): drills[drill.id] = drill
                case .deleteDrill(let id): drills[id] = nil
                }
            }
        }
    }

    @Test(arguments: 0..<40)
    func rebuildingFromTheWrittenMutationsGivesTheSameState(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        let limits = RelayStateMachine.Limits(
            maxQueuedEvents: 20, maxDedupKeys: 30, duplicateWindowMilliseconds: 50, maxIncidentFolders: 6, repeatIntervalMilliseconds: 200)
        var machine = RelayStateMachine(limits: limits)
        var model = Model()
        var clients = Clients()
        for _ in 0..<300 {
            let dedupKey = "k\(random.next() % 12)"
            let command: RelayCommand
            switch random.next() % 10 {
            case 0...3:
                let action = ["trigger", "acknowledge", "resolve"][Int(random.next() % 3)]
                command = clients.accept(
                    TestSupport.alert(action, dedupKey: dedupKey, summary: "s\(random.next() % 3)"), after: Int64(random.next() % 40))
            case 4:
                command = clients.accept(TestSupport.alert(summary: "keyless \(random.next() % 4)"), after: Int64(random.next() % 40))
            case 5...7:
                let candidates = machine.keysWithPendingEvents
                guard !candidates.isEmpty, let head = machine.head(of: candidates[Int(random.next() % UInt64(candidates.count))]) else {
                    continue
                }
                if random.next() % 2 == 0 {
                    command = .openIntent(
                        DeliveryIntent(key: head.key, eventNumber: head.number, term: random.next() % 4, attempt: head.attempts + 1))
                    break
                }
                let outcome: AttemptRecord.Outcome = [.delivered, .delivered, .retry, .deadLettered][Int(random.next() % 4)]
                command = .recordAttempt(eventNumber: head.number, clients.attempt(outcome))
            case 8 where random.next() % 2 == 0:
                // Maintenance windows, a few hundred milliseconds long, holding or not.
                let now = clients.now
                let heartbeat = "hb\(random.next() % 2)"
                switch random.next() % 8 {
                case 4:
                    command = .putHeartbeat(
                        name: heartbeat,
                        .init(routingKey: TestSupport.routingKey(), intervalMilliseconds: 10_000, graceMilliseconds: 0, source: "cron"),
                        atMilliseconds: now)
                case 5:
                    command = .checkIn(
                        name: heartbeat, routingKey: TestSupport.routingKey(), intervalMilliseconds: nil, atMilliseconds: now)
                case 6:
                    let checkIns = machine.sortedHeartbeats.first { $0.name == heartbeat }?.checkIns ?? 0
                    command = .heartbeatMissed(name: heartbeat, checkIns: checkIns, atMilliseconds: now)
                case 7: command = .deleteHeartbeat(name: heartbeat, atMilliseconds: now)
                case 0, 1:
                    command = .openWindow(
                        .init(
                            startsAtMilliseconds: now + Int64(random.next() % 50),
                            endsAtMilliseconds: now + 100 + Int64(random.next() % 300),
                            routingKeys: [TestSupport.routingKey()], reason: "test", hold: random.next() % 2 == 0),
                        atMilliseconds: now)
                case 2: command = .endWindow(id: 1 + random.next() % 4, atMilliseconds: now)
                default: command = .releaseWindows(atMilliseconds: now)
                }
            case 8:
                command = .retryDead(EventFilter(dedupKey: random.next() % 2 == 0 ? dedupKey : nil))
            case 9 where random.next() % 3 == 1:
                // PagerDuty's webhooks, some repeated and some older than what came before.
                let status = PagerDutyView.Status.allCases[Int(random.next() % 3)]
                command = .applyWebhook(
                    dedupKey: dedupKey,
                    PagerDutyView(
                        webhookID: "w\(random.next() % 20)", status: status, by: "person",
                        occurredAtMilliseconds: clients.now - Int64(random.next() % 60),
                        incidentID: "Q1"))
            case 9 where random.next() % 3 == 0:
                // Enough drills that the oldest are forgotten.
                command = .recordDrill(
                    DrillRecord(
                        startedAtMilliseconds: clients.now, hard: random.next() % 2 == 0, fromLeader: 1, toLeader: 2,
                        acceptedAfterMilliseconds: 900, deliveredAfterMilliseconds: 1_000, canaries: 10, delivered: 10, inOrder: true,
                        objectiveMilliseconds: 10_000, passed: true, note: ""))
            default:
                command = .purge(EventFilter(dedupKey: dedupKey, states: random.next() % 2 == 0 ? [.dead] : [.pending, .dead]))
            }
            var effects = RelayStateMachine.Effects()
            _ = machine.apply(command, effects: &effects)
            model.apply(effects.mutations)
        }
        let rebuilt = RelayStateMachine(
            limits: limits,
            contents: .init(
                events: Array(model.events.values), dedupEntries: Array(model.dedup.values), nextEventNumber: model.next,
                intents: Array(model.intents.values), folders: Array(model.folders.values), windows: Array(model.windows.values),
                held: Array(model.held.values), nextWindowID: model.nextWindowID, heartbeats: Array(model.heartbeats.values),
                digests: Array(model.digests.values), drills: model.drills.values.sorted { $0.id < $1.id }))
        #expect(rebuilt.events(matching: EventFilter(), limit: .max) == machine.events(matching: EventFilter(), limit: .max))
        #expect(rebuilt.keysWithPendingEvents == machine.keysWithPendingEvents)
        #expect(rebuilt.nextEventNumber == machine.nextEventNumber)
        #expect((rebuilt.pendingCount, rebuilt.deadCount) == (machine.pendingCount, machine.deadCount))
        for key in machine.keysWithPendingEvents { #expect(rebuilt.head(of: key) == machine.head(of: key)) }
        #expect(rebuilt.dedupKeyCount == machine.dedupKeyCount)
        #expect(rebuilt.contents == machine.contents)
    }
}
