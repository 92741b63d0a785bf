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
}
