import Foundation
import RelayCore
import RelayTestSupport
import Testing

@testable import RelayStore

@Suite struct RelayStoreTests {
    let directory = TestSupport.temporaryDirectory("store") + "/data"
    let key = OrderingKey(routingKey: TestSupport.routingKey(), dedupKey: "db-1")

    func event(_ number: UInt64, state: QueuedEvent.State = .pending) -> QueuedEvent {
        QueuedEvent(
            number: number, kind: .alert, action: .trigger, key: key, body: Array("{\"n\":\(number)}".utf8), fingerprint: [1, 2, 3],
            receivedAtMilliseconds: 1_700_000_000_000 + Int64(number), state: state, attempts: Int(number),
            lastError: number == 2 ? "HTTP 500" : nil)
    }

    @Test func writesAreDurableInWALWithSynchronousFull() async throws {
        let store = try RelayStore(directory: directory)
        #expect(try await store.synchronousMode() == 2)
        #expect(try await store.journalMode() == "wal")
        let mode = try FileManager.default.attributesOfItem(atPath: directory)[.posixPermissions] as? Int
        #expect(mode == 0o700)
    }

    @Test func whatIsCommittedIsWhatAReopenedStoreLoads() async throws {
        let entry = DedupEntry(
            key: key, lastNumber: 3, lastAction: .resolve, lastFingerprint: [9], lastAcceptedAtMilliseconds: 42, keyWasAssigned: true)
        do {
            let store = try RelayStore(directory: directory)
            try await store.commit([
                .putEvent(event(1)), .putEvent(event(2)), .putEvent(event(3, state: .dead)), .putDedup(entry), .setNextEventNumber(4),
            ])
            try await store.commit([.deleteEvent(1)])
        }
        let reopened = try RelayStore(directory: directory)
        let contents = try await reopened.load()
        #expect(contents.events == [event(2), event(3, state: .dead)])
        #expect(contents.dedupEntries == [entry])
        #expect(contents.nextEventNumber == 4)
    }

    @Test func attemptHistoryIsBoundedAndGoesWithItsEvent() async throws {
        let store = try RelayStore(directory: directory)
        try await store.commit([.putEvent(event(1))])
        let attempts = (0..<60).map {
            StoreMutation.appendAttempt(
                eventNumber: 1,
                AttemptRecord(
                    outcome: .retry, atMilliseconds: Int64($0), durationMilliseconds: 3, statusCode: $0 % 2 == 0 ? 500 : nil,
                    detail: "try \($0)"))
        }
        try await store.commit(attempts)
        let kept = try await store.attempts(eventNumber: 1)
        #expect(kept.count == RelayStore.maxAttemptsKeptPerEvent)
        #expect(kept.first?.detail == "try 10")
        #expect(kept.last?.statusCode == nil)
        try await store.commit([.deleteEvent(1)])
        #expect(try await store.attempts(eventNumber: 1).isEmpty)
    }

    @Test func anUnwritableDirectoryIsAClearError() throws {
        let file = TestSupport.temporaryDirectory("store") + "/not-a-directory"
        FileManager.default.createFile(atPath: file, contents: Data())
        #expect(throws: (any Error).self) { try RelayStore(directory: file) }
    }
}
