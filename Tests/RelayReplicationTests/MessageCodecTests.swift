import ClusterCore
import RelayCore
import RelayReplication
import Testing

/// Peer batches and log entries survive encoding byte for byte, and damaged input is refused
/// with an error rather than a crash.
@Suite struct MessageCodecTests {
    let key = OrderingKey(routingKey: "routingkey0000000000000000000001", dedupKey: "disk-full")

    var acceptance: Acceptance {
        Acceptance(
            kind: .alert, action: .trigger, key: key, keyWasAssigned: false, body: Array(#"{"event_action":"trigger"}"#.utf8),
            fingerprint: [1, 2, 3, 255], receivedAtMilliseconds: 1_764_000_000_000)
    }

    var commands: [RelayCommand] {
        [
            .accept(acceptance),
            .accept(
                Acceptance(
                    kind: .alert, action: .trigger, key: key, keyWasAssigned: true, body: [1], fingerprint: [9],
                    receivedAtMilliseconds: 5, facts: IncidentFacts(severity: .warning, summary: "disk 91% full", source: "db-1"))),
            .accept(
                Acceptance(
                    kind: .alert, action: .trigger, key: key, keyWasAssigned: false, body: [1], fingerprint: [9],
                    receivedAtMilliseconds: 5, facts: IncidentFacts(severity: nil, summary: "", source: ""))),
            .recordAttempt(
                eventNumber: 42,
                AttemptRecord(outcome: .retry, atMilliseconds: -5, durationMilliseconds: 840, statusCode: nil, detail: "no answer")),
            .recordAttempt(
                eventNumber: 43, AttemptRecord(outcome: .delivered, atMilliseconds: 1, durationMilliseconds: 3, statusCode: 202, detail: "")
            ),
            .retryDead(EventFilter(routingKey: key.routingKey, states: [.dead])),
            .purge(EventFilter(dedupKey: "x", eventNumber: 7)),
        ]
    }

    @Test func everyCommandRoundTrips() throws {
        for command in commands { #expect(try RelayCommand(encoded: command.encoded) == command) }
    }

    @Test func aBatchOfEveryMessageKindRoundTrips() throws {
        var machine = RelayStateMachine(limits: .init())
        var effects = RelayStateMachine.Effects()
        _ = machine.apply(.accept(acceptance), effects: &effects)
        let entries = commands.enumerated().map { Entry(term: 3, index: LogIndex($0.offset + 10), command: Optional($0.element)) }
        let bodies: [Message<RelayStateMachine>.Body] = [
            .preVoteRequest(lastLogIndex: 9, lastLogTerm: 2), .preVoteResponse(granted: true),
            .voteRequest(lastLogIndex: 9, lastLogTerm: 2, transfer: true), .voteResponse(granted: false),
            .append(
                prevLogIndex: 9, prevLogTerm: 2, entries: entries + [Entry(term: 3, index: 15, command: nil)], leaderCommit: 8, round: 77),
            .appendResponse(success: false, matchIndex: 4, round: 77),
            .installSnapshot(Snapshot(index: 30, term: 3, machine: machine), round: 78),
            .snapshotResponse(matchIndex: 30, round: 78), .timeoutNow, .heartbeat(leaderCommit: 29, round: 79),
            .heartbeatResponse(lastIndex: 31, round: 79),
        ]
        let messages = bodies.map { Message<RelayStateMachine>(from: 1, to: 2, term: 3, body: $0) }
        let decoded = try MessageCodec.decode(MessageCodec.encode(messages), limits: .init())
        #expect(decoded.count == messages.count)
        for (original, copy) in zip(messages, decoded) {
            #expect((copy.from, copy.to, copy.term) == (original.from, original.to, original.term))
            switch (original.body, copy.body) {
            case (.append(_, _, let sent, _, _), .append(_, _, let received, _, _)): #expect(sent == received)
            case (.installSnapshot(let sent, _), .installSnapshot(let received, _)):
                #expect(received.index == sent.index)
                #expect(received.machine.contents.events == sent.machine.contents.events)
                #expect(received.machine.contents.dedupEntries == sent.machine.contents.dedupEntries)
                #expect(received.machine.contents.folders == sent.machine.contents.folders)
            default: #expect("\(original.body)" == "\(copy.body)")
            }
        }
    }

    @Test func truncatedOrCorruptBatchesAreRefused() {
        let bytes = MessageCodec.encode([
            Message<RelayStateMachine>(
                from: 1, to: 2, term: 1,
                body: .append(
                    prevLogIndex: 0, prevLogTerm: 0, entries: [Entry(term: 1, index: 1, command: .accept(acceptance))], leaderCommit: 0,
                    round: 1))
        ])
        for length in [1, bytes.count / 2, bytes.count - 1] {
            #expect(throws: DecodingFailure.self) { try MessageCodec.decode(Array(bytes.prefix(length)), limits: .init()) }
        }
        #expect(throws: DecodingFailure.self) { try MessageCodec.decode(bytes + [0], limits: .init()) }
        // A count claiming more items than bytes left must not allocate or loop for them.
        #expect(throws: DecodingFailure.self) { try MessageCodec.decode([0xff, 0xff, 0xff, 0xff, 0x0f], limits: .init()) }
    }

    @Test func aSnapshotAloneRoundTripsAndATruncatedOneIsRefused() throws {
        var machine = RelayStateMachine(limits: .init())
        var effects = RelayStateMachine.Effects()
        _ = machine.apply(.accept(acceptance), effects: &effects)
        let bytes = MessageCodec.encode(snapshot: Snapshot(index: 30, term: 3, machine: machine))
        let copy = try MessageCodec.decodeSnapshot(bytes, limits: .init())
        #expect((copy.index, copy.term) == (30, 3))
        #expect(copy.machine.contents.events == machine.contents.events)
        #expect(throws: DecodingFailure.self) { try MessageCodec.decodeSnapshot(Array(bytes.dropLast()), limits: .init()) }
        #expect(throws: DecodingFailure.self) { try MessageCodec.decodeSnapshot(bytes + [0], limits: .init()) }
    }
}
