import ClusterCore
import EngineCore
import Foundation
import RelayCore
import RelayTestSupport
import Testing

@testable import RelayStore

/// The term, vote, log and applied state survive a reopen exactly as the core's contract needs.
@Suite struct ReplicatedLogStoreTests {
    let directory = TestSupport.temporaryDirectory("log-store") + "/data"
    let limits = RelayStateMachine.Limits()

    func accept(_ dedupKey: String) -> RelayCommand {
        .accept(
            Acceptance(
                kind: .alert, action: .trigger, key: OrderingKey(routingKey: TestSupport.routingKey(), dedupKey: dedupKey),
                keyWasAssigned: false, body: Array("{\"k\":\"\(dedupKey)\"}".utf8), fingerprint: Array(dedupKey.utf8),
                receivedAtMilliseconds: 1_000))
    }

    @Test func aFreshStoreIsFreshAndEmpty() async throws {
        let recovered = try await RelayStore(directory: directory).recover(limits: limits)
        #expect(recovered.isFresh)
        #expect(!recovered.recovering)
        #expect(recovered.durable.entries.isEmpty)
        #expect(recovered.durable.snapshot == nil)
    }

    @Test func theLogAfterTheAppliedIndexIsReplayedAndTheTablesHoldTheRest() async throws {
        var machine = RelayStateMachine(limits: limits)
        var effects = RelayStateMachine.Effects()
        _ = machine.apply(accept("one"), effects: &effects)
        do {
            let store = try RelayStore(directory: directory)
            try await store.write([
                .hardState(HardState(term: 3, votedFor: 2)),
                .entries([
                    Entry(term: 2, index: 1, command: nil), Entry(term: 3, index: 2, command: accept("one")),
                    Entry(term: 3, index: 3, command: accept("two")), Entry(term: 3, index: 4, command: accept("stale")),
                ]),
                // Entry 4 was never committed, and a new leader replaced it.
                .truncate(after: 3), .entries([Entry(term: 3, index: 4, command: accept("three"))]),
                .applied(index: 2, term: 3, effects.mutations), .compact(through: 2), .recovering(true),
            ])
        }
        let recovered = try await RelayStore(directory: directory).recover(limits: limits)
        #expect(!recovered.isFresh)
        #expect(recovered.recovering)
        #expect(recovered.durable.hardState == HardState(term: 3, votedFor: 2))
        #expect(recovered.durable.snapshot?.index == 2)
        #expect(recovered.durable.snapshot?.term == 3)
        #expect(recovered.machine.contents.events.map(\.key.dedupKey) == ["one"])
        #expect(recovered.durable.entries.map(\.index) == [3, 4])
        #expect(recovered.durable.entries.map(\.command) == [accept("two"), accept("three")])
    }

    @Test func compactedEntriesAreDroppedABoundedShareAtATime() async throws {
        let store = try RelayStore(directory: directory)
        let count = 3 * RelayStore.maxCompactedEntriesPerWrite + 5
        try await store.write([.entries((1...count).map { Entry(term: 1, index: LogIndex($0), command: accept("e\($0)")) })])
        let rows = { try await store.run { try $0.connection.scalar("SELECT count(*) FROM raft_log") ?? -1 } }
        try await store.write([
            .applied(index: LogIndex(count - 1), term: 1, []),
            .compact(through: LogIndex(count - 1)),
        ])
        #expect(try await rows() == count - RelayStore.maxCompactedEntriesPerWrite)
        // Later transactions, whatever they carry, drop the rest, a share each.
        for _ in 0..<3 { try await store.write([.recovering(false)]) }
        #expect(try await rows() == 1)
        let recovered = try await RelayStore(directory: directory).recover(limits: limits)
        #expect(recovered.durable.entries.map(\.index) == [LogIndex(count)])
    }

    @Test func anInstalledSnapshotReplacesTheTablesAndTheLogThatDisagrees() async throws {
        var leaderMachine = RelayStateMachine(limits: limits)
        var effects = RelayStateMachine.Effects()
        for key in ["a", "b", "c"] { _ = leaderMachine.apply(accept(key), effects: &effects) }
        var mine = RelayStateMachine(limits: limits)
        var myEffects = RelayStateMachine.Effects()
        _ = mine.apply(accept("mine"), effects: &myEffects)
        do {
            let store = try RelayStore(directory: directory)
            try await store.write([
                .hardState(HardState(term: 1, votedFor: nil)), .entries([Entry(term: 1, index: 1, command: accept("mine"))]),
                .applied(index: 1, term: 1, myEffects.mutations),
            ])
            try await store.write([.install(Snapshot(index: 9, term: 4, machine: leaderMachine))])
        }
        let recovered = try await RelayStore(directory: directory).recover(limits: limits)
        #expect(recovered.durable.snapshot?.index == 9)
        #expect(recovered.machine.contents.events.map(\.key.dedupKey) == ["a", "b", "c"])
        #expect(recovered.machine.nextEventNumber == leaderMachine.nextEventNumber)
        #expect(recovered.durable.entries.isEmpty)
    }
}
