import RelayTestSupport
import Testing

@testable import RelayCore

/// Incident folders and repeat suppression, through the state machine's own commands.
@Suite struct IncidentFolderTests {
    var machine = RelayStateMachine(
        limits: .init(
            maxQueuedEvents: 100, maxDedupKeys: 200, duplicateWindowMilliseconds: 1_000, maxIncidentFolders: 50,
            repeatIntervalMilliseconds: 60_000))
    var clients = Clients()
    let routingKey = TestSupport.routingKey()

    @discardableResult
    mutating func send(
        _ action: String, key: String = "db-1", summary: String = "disk full", severity: String = "error", after: Int64 = 10
    ) -> CommandResult {
        var extra: [String: Any] = [:]
        if action == "trigger" { extra["payload"] = ["summary": summary, "source": "host-\(key)", "severity": severity] }
        var effects = RelayStateMachine.Effects()
        return machine.apply(
            clients.accept(TestSupport.alert(action, routingKey: routingKey, dedupKey: key, extra: extra), after: after), effects: &effects)
    }

    mutating func deliverHead(of key: String = "db-1", as outcome: AttemptRecord.Outcome = .delivered) {
        let head = machine.head(of: OrderingKey(routingKey: routingKey, dedupKey: key))!
        var effects = RelayStateMachine.Effects()
        _ = machine.apply(.recordAttempt(eventNumber: head.number, clients.attempt(outcome)), effects: &effects)
    }

    func folder(_ key: String = "db-1") -> IncidentFolder { machine.folder(for: OrderingKey(routingKey: routingKey, dedupKey: key))! }

    @Test mutating func aFolderFollowsTheLifecycleAndEachEventsOutcome() {
        send("trigger", after: 0)
        let opened = clients.now
        #expect(folder().state == .open)
        send("acknowledge")
        #expect(folder().state == .acknowledged)
        deliverHead()
        send("resolve")
        #expect(folder().state == .resolved)
        // An acknowledge after the resolve changes nothing in PagerDuty, nor here.
        send("acknowledge")
        #expect(folder().state == .resolved)
        let f = folder()
        #expect(f.firstSeenAtMilliseconds == opened && f.lastSeenAtMilliseconds == clients.now)
        #expect((f.counts.triggers, f.counts.acknowledges, f.counts.resolves) == (1, 2, 1))
        #expect(f.history.map(\.action) == [.trigger, .acknowledge, .resolve, .acknowledge])
        #expect(f.history.map(\.outcome) == [.delivered, .queued, .queued, .queued])
        #expect(f.source == "host-db-1")
        #expect(f.history[0].severity == .error && f.history[0].summary == "disk full")
    }

    @Test mutating func aRepeatOfTheOpenIncidentIsRecordedButNotQueued() {
        #expect(send("trigger") == .accepted(dedupKey: "db-1", eventNumber: 1))
        let pending = machine.pendingCount
        #expect(send("trigger", after: 30_000) == .repeatSuppressed(dedupKey: "db-1"))
        #expect(send("trigger", after: 20_000) == .repeatSuppressed(dedupKey: "db-1"))
        #expect(machine.pendingCount == pending)
        #expect(folder().counts.repeatsSuppressed == 2 && folder().counts.triggers == 1)
        #expect(folder().history.map(\.outcome) == [.queued, .repeatSuppressed, .repeatSuppressed])
        #expect(folder().history.last?.eventNumber == nil)
        // A client's retry of a repeat's bytes is a retry, not one more repeat.
        let repeatBody = TestSupport.alert(
            routingKey: routingKey, dedupKey: "db-1",
            extra: ["payload": ["summary": "disk full", "source": "host-db-1", "severity": "error"], "client": "x"])
        var effects = RelayStateMachine.Effects()
        #expect(machine.apply(clients.accept(repeatBody, after: 10), effects: &effects) == .repeatSuppressed(dedupKey: "db-1"))
        guard case .duplicate = machine.apply(clients.accept(repeatBody, after: 10), effects: &effects) else {
            Issue.record("a retried repeat was not taken for a retry")
            return
        }
        #expect(folder().counts.repeatsSuppressed == 3)
        // The interval counts from the trigger forwarded, not from the last repeat.
        #expect(send("trigger", after: 10_001 - 20) == .accepted(dedupKey: "db-1", eventNumber: 2))
    }

    /// Each event is delivered before the next is sent, so that none is coalesced in the queue,
    /// and sent after the duplicate window, so that none is taken for a client retry. Returns
    /// whether it was queued.
    mutating func forwarded(_ action: String, summary: String = "disk full", severity: String = "error") -> Bool {
        let next = machine.nextEventNumber
        let result = send(action, summary: summary, severity: severity, after: 2_000)
        if machine.pendingCount > 0 { deliverHead() }
        return result == .accepted(dedupKey: "db-1", eventNumber: next)
    }

    @Test mutating func whatChangesTheIncidentIsAlwaysForwarded() {
        #expect(forwarded("trigger", severity: "warning"))
        // An escalation, another summary, and a lower severity all tell PagerDuty something new.
        #expect(forwarded("trigger", severity: "critical"))
        #expect(forwarded("trigger", summary: "disk full again", severity: "critical"))
        #expect(forwarded("trigger", summary: "disk full again", severity: "info"))
        // Acknowledges and resolves are never held back as repeats.
        #expect(forwarded("acknowledge"))
        #expect(forwarded("acknowledge"))
        // A repeat of an acknowledged incident adds nothing either.
        #expect(send("trigger", summary: "disk full again", severity: "info", after: 2_000) == .repeatSuppressed(dedupKey: "db-1"))
        #expect(forwarded("resolve"))
        #expect(forwarded("resolve"))
        // After a resolve the same trigger opens a new incident.
        #expect(forwarded("trigger", summary: "disk full again", severity: "info"))
    }

    @Test mutating func aTriggerThatNeverReachedPagerDutyIsNotRepeated() {
        send("trigger")
        deliverHead(as: .deadLettered)
        #expect(send("trigger", after: 2_000) == .accepted(dedupKey: "db-1", eventNumber: 2))
        var effects = RelayStateMachine.Effects()
        _ = machine.apply(.purge(EventFilter(eventNumber: 2)), effects: &effects)
        #expect(folder().history.map(\.outcome) == [.deadLettered, .purged])
        #expect(send("trigger", after: 2_000) == .accepted(dedupKey: "db-1", eventNumber: 3))
    }

    @Test mutating func aZeroIntervalForwardsEveryRepeat() {
        machine = RelayStateMachine(limits: .init(repeatIntervalMilliseconds: 0))
        send("trigger")
        deliverHead()
        #expect(send("trigger", after: 61_000) == .accepted(dedupKey: "db-1", eventNumber: 2))
    }

    @Test mutating func aReplacedEventIsMarkedAndItsSuccessorQueued() {
        send("trigger")
        send("resolve")
        send("trigger", summary: "a")
        #expect(send("trigger", summary: "b") == .coalesced(dedupKey: "db-1", eventNumber: 3))
        #expect(folder().history.map(\.outcome) == [.queued, .queued, .replaced, .queued])
        #expect(folder().history.map(\.eventNumber) == [1, 2, 3, 3])
    }

    @Test mutating func theHistoryIsBoundedAndCountsWhatItDropped() {
        for index in 0..<40 { send("trigger", summary: "flap \(index)") }
        #expect(folder().history.count == IncidentFolder.maxHistoryEntries)
        #expect(folder().droppedEntries == 40 - IncidentFolder.maxHistoryEntries)
        #expect(folder().history.last?.summary == "flap 39")
        #expect(folder().counts.triggers == 40)
    }

    @Test mutating func theLeastRecentlyChangedFolderIsForgottenPastTheLimit() {
        machine = RelayStateMachine(limits: .init(maxQueuedEvents: 10, maxDedupKeys: 20, maxIncidentFolders: 3))
        for key in ["a", "b", "c"] { send("trigger", key: key) }
        send("acknowledge", key: "a")
        var effects = RelayStateMachine.Effects()
        _ = machine.apply(
            clients.accept(TestSupport.alert("resolve", routingKey: routingKey, dedupKey: "d")), effects: &effects)
        #expect(effects.mutations.contains(.deleteFolder(OrderingKey(routingKey: routingKey, dedupKey: "b"))))
        #expect(machine.folderCount == 3)
        #expect(machine.folders(matching: IncidentFilter(), limit: 10).map(\.key.dedupKey) == ["d", "a", "c"])
    }

    @Test mutating func listsFilterAndPageNewestFirst() {
        for index in 0..<7 { send("trigger", key: "k\(index)") }
        send("resolve", key: "k2")
        let first = machine.folders(matching: IncidentFilter(states: [.open]), limit: 3)
        #expect(first.map(\.key.dedupKey) == ["k6", "k5", "k4"])
        let second = machine.folders(matching: IncidentFilter(states: [.open]), before: first.last!.sequence, limit: 3)
        #expect(second.map(\.key.dedupKey) == ["k3", "k1", "k0"])
        #expect(machine.folders(matching: IncidentFilter(source: "host-k5"), limit: 10).map(\.key.dedupKey) == ["k5"])
        #expect(machine.folders(matching: IncidentFilter(routingKey: "other"), limit: 10).isEmpty)
        #expect(machine.folders(matching: IncidentFilter(states: [.resolved]), limit: 10).map(\.key.dedupKey) == ["k2"])
    }

    @Test mutating func changeEventsGetNoFolder() {
        var effects = RelayStateMachine.Effects()
        let body = Array(#"{"routing_key":"\#(routingKey)","payload":{"summary":"deploy","source":"ci"}}"#.utf8)
        _ = machine.apply(clients.accept(body, api: .v2Change), effects: &effects)
        #expect(machine.folderCount == 0)
    }

    @Test mutating func aFolderRoundTripsThroughItsEncodingAndASnapshotRebuild() throws {
        for index in 0..<5 { send("trigger", summary: "s\(index % 2)", severity: index == 4 ? "critical" : "info") }
        send("acknowledge")
        deliverHead()
        let encoded = folder().encoded
        #expect(try IncidentFolder(encoded: encoded) == folder())
        // The last byte is the absent webhook view, which a folder stored before webhooks lacks;
        // a byte less than that is a damaged folder.
        #expect(throws: DecodingFailure.self) { try IncidentFolder(encoded: Array(encoded.dropLast(2))) }
        let rebuilt = RelayStateMachine(limits: machine.limits, contents: machine.contents)
        #expect(rebuilt.contents == machine.contents)
    }

    @Test func unsafeFolderLimitsAreRefused() {
        #expect(throws: ConfigurationError.self) { try RelayStateMachine.Limits(maxIncidentFolders: 0).validate() }
        #expect(throws: ConfigurationError.self) { try RelayStateMachine.Limits(repeatIntervalMilliseconds: -1).validate() }
        #expect(throws: ConfigurationError.self) {
            try RelayStateMachine.Limits(repeatIntervalMilliseconds: RelayStateMachine.Limits.maxRepeatIntervalMilliseconds + 1).validate()
        }
    }
}

extension IncidentFolderTests {
    @Test func aWebhookAppliesOnceInOrderAndNotToALaterIncident() {
        var folder = IncidentFolder(
            key: OrderingKey(routingKey: TestSupport.routingKey(), dedupKey: "pump-7"), state: .open, source: "plc",
            firstSeenAtMilliseconds: 1_000, lastSeenAtMilliseconds: 1_000,
            lastForwardedTrigger: .init(eventNumber: 1, severity: .critical, summary: "low", receivedAtMilliseconds: 1_000), sequence: 1)
        let acknowledged = PagerDutyView(webhookID: "W1", status: .acknowledged, by: "Ada", occurredAtMilliseconds: 2_000, incidentID: "Q")
        #expect(folder.refusal(of: acknowledged) == nil)
        folder.apply(acknowledged)
        #expect(folder.state == .acknowledged && folder.lastForwardedTrigger != nil)
        #expect(folder.refusal(of: acknowledged) == "duplicate")
        let earlier = PagerDutyView(webhookID: "W0", status: .resolved, by: nil, occurredAtMilliseconds: 1_500, incidentID: "Q")
        #expect(folder.refusal(of: earlier) == "older than the last webhook applied")
        let resolved = PagerDutyView(webhookID: "W2", status: .resolved, by: "Ada", occurredAtMilliseconds: 3_000, incidentID: "Q")
        folder.apply(resolved)
        #expect(folder.state == .resolved && folder.lastForwardedTrigger == nil, "a repeat has nothing left to match")
        // A new trigger at 5 s; a retry of a resolve from before it speaks of the old incident.
        folder.lastForwardedTrigger = .init(eventNumber: 2, severity: .critical, summary: "low", receivedAtMilliseconds: 5_000)
        folder.state = .open
        let stale = PagerDutyView(webhookID: "W3", status: .resolved, by: "Ada", occurredAtMilliseconds: 4_000, incidentID: "Q")
        #expect(folder.refusal(of: stale) == "older than the last trigger forwarded")
    }

    @Test func aFolderStoredBeforeWebhooksStillReads() throws {
        let folder = IncidentFolder(
            key: OrderingKey(routingKey: TestSupport.routingKey(), dedupKey: "old"), state: .open, source: "plc",
            firstSeenAtMilliseconds: 1,
            lastSeenAtMilliseconds: 2, sequence: 3)
        var writer = ByteWriter()
        writer.write(folder)
        var bytes = writer.bytes
        #expect(bytes.last == 0, "no view: the optional's flag")
        bytes.removeLast()  // What a node before webhooks wrote.
        var reader = ByteReader(bytes)
        #expect(try reader.readFolder() == folder)
        var withView = folder
        withView.pagerDuty = PagerDutyView(webhookID: "W", status: .resolved, by: nil, occurredAtMilliseconds: 9, incidentID: "Q")
        var viewWriter = ByteWriter()
        viewWriter.write(withView)
        var viewReader = ByteReader(viewWriter.bytes)
        #expect(try viewReader.readFolder() == withView)
    }
}
