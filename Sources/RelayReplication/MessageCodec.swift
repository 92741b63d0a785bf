import ClusterCore
import RelayCore

/// Peer messages of the relay's cluster in the compact binary encoding: a batch is a count, then
/// each message. A snapshot carries the whole queue and dedup table; the receiver rebuilds the
/// state machine with its own limits.
public enum MessageCodec {
    public typealias RelayMessage = Message<RelayStateMachine>

    /// Largest batch a node accepts in one request: the sender keeps batches near 4 MB and an
    /// append near 1 MB (`RaftNode.maxAppendBytes`, past which only a single large entry goes).
    /// Snapshots travel in chunks of their own (`encode(snapshot:)`), never in a batch.
    public static let maxBatchBytes = 64 * 1_024 * 1_024

    /// Concrete, not generic over the collection: it runs for every batch a node sends, and an
    /// unspecialized generic looks up type metadata at each call.
    public static func encode(_ messages: [RelayMessage]) -> [UInt8] {
        var writer = ByteWriter(capacity: 64 * messages.count)
        writer.write(UInt64(messages.count))
        for message in messages { write(message, to: &writer) }
        return writer.bytes
    }

    public static func decode(_ bytes: [UInt8], limits: RelayStateMachine.Limits) throws(DecodingFailure) -> [RelayMessage] {
        var reader = ByteReader(bytes)
        var messages: [RelayMessage] = []
        for _ in 0..<(try reader.readCount()) { messages.append(try read(from: &reader, limits: limits)) }
        guard reader.isAtEnd else { throw DecodingFailure("trailing bytes after a batch") }
        return messages
    }

    public static func write(_ entry: Entry<RelayCommand>, to writer: inout ByteWriter) {
        writer.write(entry.term)
        writer.write(entry.index)
        writer.write(optional: entry.command) { $0.write($1) }
    }

    public static func readEntry(from reader: inout ByteReader) throws(DecodingFailure) -> Entry<RelayCommand> {
        Entry(
            term: try reader.readUInt64(), index: try reader.readUInt64(),
            command: try reader.read { (reader) throws(DecodingFailure) in try reader.readCommand() })
    }

    private static func write(_ message: RelayMessage, to writer: inout ByteWriter) {
        writer.write(message.from)
        writer.write(message.to)
        writer.write(message.term)
        switch message.body {
        case .preVoteRequest(let lastIndex, let lastTerm):
            writer.write(UInt64(0))
            writer.write(lastIndex)
            writer.write(lastTerm)
        case .preVoteResponse(let granted):
            writer.write(UInt64(1))
            writer.write(granted)
        case .voteRequest(let lastIndex, let lastTerm, let transfer):
            writer.write(UInt64(2))
            writer.write(lastIndex)
            writer.write(lastTerm)
            writer.write(transfer)
        case .voteResponse(let granted):
            writer.write(UInt64(3))
            writer.write(granted)
        case .append(let prevIndex, let prevTerm, let entries, let leaderCommit, let round):
            writer.write(UInt64(4))
            writer.write(prevIndex)
            writer.write(prevTerm)
            writer.write(UInt64(entries.count))
            for entry in entries { write(entry, to: &writer) }
            writer.write(leaderCommit)
            writer.write(round)
        case .appendResponse(let success, let matchIndex, let round):
            writer.write(UInt64(5))
            writer.write(success)
            writer.write(matchIndex)
            writer.write(round)
        case .installSnapshot(let snapshot, let round):
            writer.write(UInt64(6))
            write(snapshot, to: &writer)
            writer.write(round)
        case .snapshotResponse(let matchIndex, let round):
            writer.write(UInt64(7))
            writer.write(matchIndex)
            writer.write(round)
        case .timeoutNow:
            writer.write(UInt64(8))
        case .heartbeat(let leaderCommit, let round):
            writer.write(UInt64(9))
            writer.write(leaderCommit)
            writer.write(round)
        case .heartbeatResponse(let lastIndex, let round):
            writer.write(UInt64(10))
            writer.write(lastIndex)
            writer.write(round)
        }
    }

    /// A snapshot alone: what a leader streams to a follower in chunks.
    public static func encode(snapshot: Snapshot<RelayStateMachine>) -> [UInt8] {
        var writer = ByteWriter(capacity: 1_024)
        write(snapshot, to: &writer)
        return writer.bytes
    }

    public static func decodeSnapshot(_ bytes: [UInt8], limits: RelayStateMachine.Limits) throws(DecodingFailure)
        -> Snapshot<RelayStateMachine>
    {
        var reader = ByteReader(bytes)
        let snapshot = try readSnapshot(from: &reader, limits: limits)
        guard reader.isAtEnd else { throw DecodingFailure("trailing bytes after a snapshot") }
        return snapshot
    }

    private static func write(_ snapshot: Snapshot<RelayStateMachine>, to writer: inout ByteWriter) {
        writer.write(snapshot.index)
        writer.write(snapshot.term)
        let contents = snapshot.machine.contents
        writer.write(contents.nextEventNumber)
        writer.write(list: contents.events) { $0.write($1) }
        writer.write(list: contents.dedupEntries) { $0.write($1) }
        writer.write(list: contents.intents) { $0.write($1) }
        writer.write(list: contents.folders) { $0.write($1) }
        writer.write(contents.nextWindowID)
        writer.write(list: contents.windows) { $0.write($1) }
        writer.write(list: contents.held) { $0.write($1) }
        writer.write(list: contents.heartbeats) { $0.write($1) }
        writer.write(list: contents.digests) { $0.write($1) }
        writer.write(list: contents.drills) { $0.write($1) }
    }

    private static func readSnapshot(from reader: inout ByteReader, limits: RelayStateMachine.Limits) throws(DecodingFailure)
        -> Snapshot<RelayStateMachine>
    {
        let index = try reader.readUInt64()
        let snapshotTerm = try reader.readUInt64()
        let nextEventNumber = try reader.readUInt64()
        let events = try reader.readList { (reader) throws(DecodingFailure) in try reader.readEvent() }
        let dedup = try reader.readList { (reader) throws(DecodingFailure) in try reader.readDedupEntry() }
        let intents = try reader.readList { (reader) throws(DecodingFailure) in try reader.readIntent() }
        let folders = try reader.readList { (reader) throws(DecodingFailure) in try reader.readFolder() }
        let nextWindowID = try reader.readUInt64()
        let windows = try reader.readList { (reader) throws(DecodingFailure) in try reader.readWindow() }
        let held = try reader.readList { (reader) throws(DecodingFailure) in try reader.readHeldEvent() }
        let heartbeats = try reader.readList { (reader) throws(DecodingFailure) in try reader.readHeartbeat() }
        let digests = try reader.readList { (reader) throws(DecodingFailure) in try reader.readDigest() }
        let drills = try reader.readList { (reader) throws(DecodingFailure) in try reader.readDrill() }
        guard drills.count <= DrillRecord.maxDrills, zip(drills, drills.dropFirst()).allSatisfy({ $0.id < $1.id }) else {
            throw DecodingFailure("a snapshot's drills are too many or out of order")
        }
        guard Set(digests.map(\.routingKey)).count == digests.count else {
            throw DecodingFailure("a snapshot has two digests for a routing key")
        }
        guard Set(heartbeats.map(\.name)).count == heartbeats.count else { throw DecodingFailure("a snapshot names a heartbeat twice") }
        guard windows.allSatisfy({ $0.id < nextWindowID }), held.allSatisfy({ event in windows.contains { $0.id == event.windowID } })
        else {
            throw DecodingFailure("a snapshot's maintenance windows do not add up")
        }
        // What `RelayStateMachine.init` holds as preconditions is checked here first: a
        // snapshot comes from a peer, and a bad one must be refused, not crash the node
        // (the peerstream fuzz target's first find).
        let dedupKeys = Set(dedup.map(\.key))
        guard dedupKeys.count == dedup.count, Set(folders.map(\.key)).count == folders.count,
            Set(events.map(\.number)).count == events.count, Set(intents.map(\.key)).count == intents.count
        else {
            throw DecodingFailure("a snapshot holds two dedup entries, folders, events or intents for one key or number")
        }
        guard events.allSatisfy({ $0.number < nextEventNumber && dedupKeys.contains($0.key) }),
            intents.allSatisfy({ dedupKeys.contains($0.key) })
        else {
            throw DecodingFailure("a snapshot's events or intents do not add up with its dedup table and next event number")
        }
        let machine = RelayStateMachine(
            limits: limits,
            contents: .init(
                events: events, dedupEntries: dedup, nextEventNumber: nextEventNumber, intents: intents, folders: folders,
                windows: windows, held: held, nextWindowID: nextWindowID, heartbeats: heartbeats, digests: digests,
                drills: drills))
        return Snapshot(index: index, term: snapshotTerm, machine: machine)
    }

    private static func read(from reader: inout ByteReader, limits: RelayStateMachine.Limits) throws(DecodingFailure) -> RelayMessage {
        let from = try reader.readInt()
        let to = try reader.readInt()
        let term = try reader.readUInt64()
        let body: RelayMessage.Body
        switch try reader.readUInt64() {
        case 0: body = .preVoteRequest(lastLogIndex: try reader.readUInt64(), lastLogTerm: try reader.readUInt64())
        case 1: body = .preVoteResponse(granted: try reader.readBool())
        case 2:
            body = .voteRequest(
                lastLogIndex: try reader.readUInt64(), lastLogTerm: try reader.readUInt64(), transfer: try reader.readBool())
        case 3: body = .voteResponse(granted: try reader.readBool())
        case 4:
            let prevIndex = try reader.readUInt64()
            let prevTerm = try reader.readUInt64()
            var entries: [Entry<RelayCommand>] = []
            for _ in 0..<(try reader.readCount()) { entries.append(try readEntry(from: &reader)) }
            body = .append(
                prevLogIndex: prevIndex, prevLogTerm: prevTerm, entries: entries, leaderCommit: try reader.readUInt64(),
                round: try reader.readUInt64())
        case 5: body = .appendResponse(success: try reader.readBool(), matchIndex: try reader.readUInt64(), round: try reader.readUInt64())
        case 6: body = .installSnapshot(try readSnapshot(from: &reader, limits: limits), round: try reader.readUInt64())
        case 7: body = .snapshotResponse(matchIndex: try reader.readUInt64(), round: try reader.readUInt64())
        case 8: body = .timeoutNow
        case 9: body = .heartbeat(leaderCommit: try reader.readUInt64(), round: try reader.readUInt64())
        case 10: body = .heartbeatResponse(lastIndex: try reader.readUInt64(), round: try reader.readUInt64())
        case let tag: throw DecodingFailure("unknown message tag \(tag)")
        }
        return Message(from: from, to: to, term: term, body: body)
    }
}
