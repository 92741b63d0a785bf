/// One failover rehearsal (`pdrelay drill`), as its runner measured it. Kept in the replicated
/// state, so that every node's status page shows the same history, whichever node ran the drill
/// and whichever leads now; the newest `maxDrills` are kept.
public struct DrillRecord: Sendable, Equatable, Codable {
    /// Assigned when the record is applied: one more than the newest kept.
    public var id: UInt64
    public var startedAtMilliseconds: Int64
    /// A `kill -9` of the leader rather than an orderly handover.
    public var hard: Bool
    public var fromLeader: Int
    /// 0 when no new leader took over.
    public var toLeader: Int
    /// From the handover (or kill) until a canary sent after it was accepted; -1 if none was.
    public var acceptedAfterMilliseconds: Int64
    /// From the handover (or kill) until that canary was delivered; -1 if it was not.
    public var deliveredAfterMilliseconds: Int64
    public var canaries: Int
    public var delivered: Int
    public var inOrder: Bool
    public var objectiveMilliseconds: Int64
    public var passed: Bool
    /// Why it failed, or what else the runner saw; at most `maxNoteBytes`.
    public var note: String

    public static let maxDrills = 50
    public static let maxNoteBytes = 512
    public static let maxCanaries = 1_000

    public init(
        id: UInt64 = 0, startedAtMilliseconds: Int64, hard: Bool, fromLeader: Int, toLeader: Int, acceptedAfterMilliseconds: Int64,
        deliveredAfterMilliseconds: Int64, canaries: Int, delivered: Int, inOrder: Bool, objectiveMilliseconds: Int64, passed: Bool,
        note: String
    ) {
        self.id = id
        self.startedAtMilliseconds = startedAtMilliseconds
        self.hard = hard
        self.fromLeader = fromLeader
        self.toLeader = toLeader
        self.acceptedAfterMilliseconds = acceptedAfterMilliseconds
        self.deliveredAfterMilliseconds = deliveredAfterMilliseconds
        self.canaries = canaries
        self.delivered = delivered
        self.inOrder = inOrder
        self.objectiveMilliseconds = objectiveMilliseconds
        self.passed = passed
        self.note = note
    }

    /// Why a record cannot be kept, or nil: every field within bounds.
    public var refusal: String? {
        if note.utf8.count > Self.maxNoteBytes { return "note must be at most \(Self.maxNoteBytes) bytes" }
        if !(0...Self.maxCanaries).contains(canaries) || !(0...canaries).contains(delivered) {
            return "canaries must be 0…\(Self.maxCanaries) and delivered 0…canaries"
        }
        if !(0...9).contains(fromLeader) || !(0...9).contains(toLeader) { return "leaders must be node ids (1…9), or 0 for none" }
        if objectiveMilliseconds < 0 || acceptedAfterMilliseconds < -1 || deliveredAfterMilliseconds < -1 {
            return "times must not be negative"
        }
        return nil
    }
}

extension ByteWriter {
    public mutating func write(_ drill: DrillRecord) {
        write(drill.id)
        write(drill.startedAtMilliseconds)
        write(drill.hard)
        write(drill.fromLeader)
        write(drill.toLeader)
        write(drill.acceptedAfterMilliseconds)
        write(drill.deliveredAfterMilliseconds)
        write(drill.canaries)
        write(drill.delivered)
        write(drill.inOrder)
        write(drill.objectiveMilliseconds)
        write(drill.passed)
        write(drill.note)
    }
}

extension ByteReader {
    public mutating func readDrill() throws(DecodingFailure) -> DrillRecord {
        let drill = DrillRecord(
            id: try readUInt64(), startedAtMilliseconds: try readInt64(), hard: try readBool(), fromLeader: try readInt(),
            toLeader: try readInt(), acceptedAfterMilliseconds: try readInt64(), deliveredAfterMilliseconds: try readInt64(),
            canaries: try readInt(), delivered: try readInt(), inOrder: try readBool(), objectiveMilliseconds: try readInt64(),
            passed: try readBool(), note: try readString())
        if let refusal = drill.refusal { throw DecodingFailure("a drill record out of bounds: \(refusal)") }
        return drill
    }
}

extension DrillRecord: BinaryBlob {
    public static let blobName = "a drill record"
    public func write(to writer: inout ByteWriter) { writer.write(self) }
    public init(from reader: inout ByteReader) throws(DecodingFailure) { self = try reader.readDrill() }
}
