import RelayTestSupport
import Testing

@testable import RelayCore

/// Intents are the replicated half of per-key fencing: opened only for a key's first pending
/// event, closed by that attempt's outcome, kept when the event is purged mid-flight.
@Suite struct DeliveryIntentTests {
    var machine = RelayStateMachine(limits: .init(maxQueuedEvents: 5, maxDedupKeys: 8, duplicateWindowMilliseconds: 60_000))
    var clients = Clients()
    let key = OrderingKey(routingKey: TestSupport.routingKey(), dedupKey: "db-1")

    @discardableResult
    mutating func apply(_ command: RelayCommand) -> (CommandResult, [StoreMutation]) {
        var effects = RelayStateMachine.Effects()
        let result = machine.apply(command, effects: &effects)
        return (result, effects.mutations)
    }

    mutating func accept(_ action: String) {
        apply(clients.accept(TestSupport.alert(action, dedupKey: "db-1")))
    }

    func intent(_ number: UInt64, term: UInt64 = 2) -> DeliveryIntent {
        DeliveryIntent(key: key, eventNumber: number, term: term, attempt: 1)
    }

    @Test mutating func anIntentOpensOnlyForTheKeysFirstEventAndTheOutcomeClosesIt() {
        accept("trigger")
        accept("resolve")
        #expect(apply(.openIntent(intent(2))).0 == .eventGone)
        #expect(machine.openIntent(for: key) == nil)
        let (opened, mutations) = apply(.openIntent(intent(1)))
        #expect(opened == .intentOpened)
        #expect(mutations == [.putIntent(intent(1))])
        #expect(machine.openIntent(for: key) == intent(1))
        let (_, closing) = apply(.recordAttempt(eventNumber: 1, clients.attempt(.delivered)))
        #expect(closing.contains(.deleteIntent(key)))
        #expect(machine.openIntent(for: key) == nil)
    }

    @Test mutating func aNewerTermsIntentReplacesAnOlderOne() {
        accept("trigger")
        apply(.openIntent(intent(1, term: 2)))
        apply(.openIntent(intent(1, term: 5)))
        #expect(machine.openIntent(for: key)?.term == 5)
        #expect(machine.openIntentCount == 1)
    }

    @Test mutating func anIntentOutlivesItsPurgedEventUntilTheAttemptEnds() {
        accept("trigger")
        apply(.openIntent(intent(1)))
        apply(.purge(EventFilter(dedupKey: "db-1")))
        // The request may still be on its way: a new event for the key must not race it.
        #expect(machine.openIntent(for: key) == intent(1))
        #expect(apply(.recordAttempt(eventNumber: 1, clients.attempt(.delivered))).0 == .eventGone)
        #expect(machine.openIntent(for: key) == nil)
    }

    @Test mutating func intentsSurviveARebuildFromTheStoresContents() {
        accept("trigger")
        apply(.openIntent(intent(1)))
        let contents = machine.contents
        let rebuilt = RelayStateMachine(
            limits: machine.limits, events: contents.events, dedupEntries: contents.dedupEntries,
            nextEventNumber: contents.nextEventNumber, intents: contents.intents)
        #expect(rebuilt.openIntent(for: key) == intent(1))
    }

    @Test func anIntentSurvivesTheBinaryCodec() throws {
        let command = RelayCommand.openIntent(intent(7, term: 9))
        #expect(try RelayCommand(encoded: command.encoded) == command)
    }

    /// `clients.accept`'s acceptance, proposed with `term`'s intent.
    mutating func acceptWithIntent(_ action: String, term: UInt64 = 2) -> (CommandResult, [StoreMutation]) {
        guard case .accept(let acceptance) = clients.accept(TestSupport.alert(action, dedupKey: "db-1")) else {
            preconditionFailure("Clients.accept makes acceptances")
        }
        return apply(.acceptAndOpenIntent(acceptance, term: term))
    }

    @Test mutating func anAcceptanceOpensItsIntentOnlyWhenItQueuesTheKeysFirstEvent() {
        let (first, mutations) = acceptWithIntent("trigger")
        #expect(first == .accepted(dedupKey: "db-1", eventNumber: 1))
        #expect(mutations.last == .putIntent(intent(1)))
        #expect(machine.openIntent(for: key) == intent(1))
        // Behind a pending event of its key: queued, and no intent of its own.
        let (second, behind) = acceptWithIntent("acknowledge")
        #expect(second == .accepted(dedupKey: "db-1", eventNumber: 2))
        #expect(!behind.contains { if case .putIntent = $0 { true } else { false } })
        #expect(machine.openIntent(for: key) == intent(1))
    }

    @Test mutating func anAcceptanceBehindAKeysPendingEventOpensNoIntentEvenWhenNoneIsOpen() {
        // The leader proposed it as its key's first, but an earlier event of the key was applied
        // before it (proposed by another path, or by an older leader): the intent would let the
        // later event be sent first.
        accept("trigger")
        #expect(machine.openIntent(for: key) == nil)
        let (result, mutations) = acceptWithIntent("acknowledge")
        #expect(result == .accepted(dedupKey: "db-1", eventNumber: 2))
        #expect(!mutations.contains { if case .putIntent = $0 { true } else { false } })
        #expect(machine.openIntent(for: key) == nil)
    }

    @Test mutating func anAcceptanceOpensNoIntentBesideAnOlderRequestStillOut() {
        accept("trigger")
        apply(.openIntent(intent(1, term: 2)))
        apply(.purge(EventFilter(dedupKey: "db-1")))
        // Event 1's request of term 2 may still be on its way: the new event waits for the
        // leader's fence (a separate intent), and term 2's intent stays.
        let (result, mutations) = acceptWithIntent("resolve", term: 3)
        #expect(result == .accepted(dedupKey: "db-1", eventNumber: 2))
        #expect(!mutations.contains { if case .putIntent = $0 { true } else { false } })
        #expect(machine.openIntent(for: key) == intent(1, term: 2))
    }

    @Test mutating func aDuplicateOpensNoIntent() {
        accept("trigger")
        apply(.recordAttempt(eventNumber: 1, clients.attempt(.delivered)))
        // The same bytes again within the duplicate window: nothing is queued, so nothing is sent.
        let (result, _) = acceptWithIntent("trigger")
        #expect(result == .duplicate(dedupKey: "db-1", eventNumber: 1))
        #expect(machine.openIntent(for: key) == nil)
    }

    @Test mutating func anOutcomeClosesItsIntentAndOpensTheNextEventsInOneEntry() {
        accept("trigger")
        accept("acknowledge")
        apply(.openIntent(intent(1)))
        let (result, mutations) = apply(
            .recordAttemptAndOpenIntent(eventNumber: 1, clients.attempt(.delivered), next: intent(2)))
        #expect(result == .attemptRecorded)
        #expect(mutations.firstIndex(of: .deleteIntent(key))! < mutations.firstIndex(of: .putIntent(intent(2)))!)
        #expect(machine.openIntent(for: key) == intent(2))
        // An outcome that leaves the event first for its key (a retry) opens no intent behind it.
        let (_, retried) = apply(.recordAttemptAndOpenIntent(eventNumber: 2, clients.attempt(.retry, status: 500), next: intent(3)))
        #expect(!retried.contains { if case .putIntent = $0 { true } else { false } })
        #expect(machine.openIntent(for: key) == nil)
    }

    @Test mutating func intentCarryingCommandsSurviveTheBinaryCodec() throws {
        guard case .accept(let acceptance) = clients.accept(TestSupport.alert("trigger", dedupKey: "db-1")) else { return }
        let plain = Acceptance(
            kind: acceptance.kind, action: acceptance.action, key: acceptance.key, keyWasAssigned: false, body: acceptance.body,
            fingerprint: acceptance.fingerprint, receivedAtMilliseconds: acceptance.receivedAtMilliseconds, facts: nil)
        for command in [
            RelayCommand.acceptAndOpenIntent(acceptance, term: 4), .acceptAndOpenIntent(plain, term: 1 << 40),
            .recordAttemptAndOpenIntent(eventNumber: 3, clients.attempt(.delivered), next: intent(4, term: 6)),
        ] {
            #expect(try RelayCommand(encoded: command.encoded) == command)
        }
    }

    @Test func anIntentCarryingCommandMustHoldTheOneCommandItNames() {
        // Tag 17 (an acceptance with its term's intent) around anything but an acceptance, such
        // as itself nested without end, is refused after reading one inner tag.
        var nested: [UInt8] = []
        for _ in 0..<100_000 { nested += [17, 1] }
        #expect(throws: DecodingFailure.self) { try RelayCommand(encoded: nested) }
        let outcomeAroundAcceptance: [UInt8] = [18] + RelayCommand.openIntent(intent(1)).encoded.dropFirst() + [0]
        #expect(throws: DecodingFailure.self) { try RelayCommand(encoded: outcomeAroundAcceptance) }
    }
}
