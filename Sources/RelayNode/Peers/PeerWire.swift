import ClusterCore
import EngineCore
import RelayCore

/// The payloads of the peer API beside `MessageCodec`'s batches: forwarded commands and their
/// outcomes (on the peer stream), the status answer and snapshot chunks (over HTTP).
enum PeerWire {
    static let statusPath = "/cluster/v1/status"
    /// The largest answer to an HTTP peer request: a status or a snapshot offset, a few bytes, or
    /// an error's text. (Forwarded commands travel on the peer stream, bounded by its frames.)
    static let maxAnswerBytes = 64 * 1_024

    /// What a fresh node asks its peers before it trusts its empty disk.
    struct Status: Sendable, Equatable {
        let term: Term
        let recovering: Bool

        /// A peer that has never taken part in the cluster.
        var isFresh: Bool { term == 0 && !recovering }

        var encoded: [UInt8] {
            var writer = ByteWriter()
            writer.write(term)
            writer.write(recovering)
            return writer.bytes
        }

        init(term: Term, recovering: Bool) {
            self.term = term
            self.recovering = recovering
        }

        init(encoded: [UInt8]) throws(DecodingFailure) {
            var reader = ByteReader(encoded)
            self.init(term: try reader.readUInt64(), recovering: try reader.readBool())
        }
    }

    /// Forwarded client commands, each with the milliseconds left of its hold (nil: none), after
    /// which the leader refuses it as stale (`request_hold_milliseconds`).
    struct Forwarded: Sendable, Equatable {
        let command: RelayCommand
        let holdRemainingMilliseconds: Int64?
    }

    /// The commands, then their holds. A batch from a node that sent no holds ends after the
    /// commands, and reads back with none.
    static func encode(commands: [RelayCommand], holdRemainingMilliseconds: [Int64?]) -> [UInt8] {
        precondition(commands.count == holdRemainingMilliseconds.count, "one hold per command")
        var writer = ByteWriter()
        writer.write(UInt64(commands.count))
        for command in commands { writer.write(command) }
        for hold in holdRemainingMilliseconds { writer.write(optional: hold) { $0.write(UInt64(max($1, 0))) } }
        return writer.bytes
    }

    static func decodeCommands(_ bytes: [UInt8]) throws(DecodingFailure) -> [Forwarded] {
        var reader = ByteReader(bytes)
        var commands: [RelayCommand] = []
        for _ in 0..<(try reader.readCount()) { commands.append(try reader.readCommand()) }
        var holds = [Int64?](repeating: nil, count: commands.count)
        if !reader.isAtEnd {
            for index in holds.indices {
                holds[index] = try reader.read(optional: { (reader) throws(DecodingFailure) in
                    let hold = try reader.readUInt64()
                    guard hold <= UInt64(Int64.max) else { throw DecodingFailure("a hold of \(hold) ms") }
                    return Int64(hold)
                })
            }
        }
        guard reader.isAtEnd else { throw DecodingFailure("trailing bytes after the commands") }
        return zip(commands, holds).map { Forwarded(command: $0, holdRemainingMilliseconds: $1) }
    }

    static func encode(outcomes: [Result<CommandResult, EngineError>]) -> [UInt8] {
        var writer = ByteWriter()
        writer.write(UInt64(outcomes.count))
        for outcome in outcomes { write(outcome, to: &writer) }
        return writer.bytes
    }

    static func decodeOutcomes(_ bytes: [UInt8]) throws(DecodingFailure) -> [Result<CommandResult, EngineError>] {
        var reader = ByteReader(bytes)
        var outcomes: [Result<CommandResult, EngineError>] = []
        for _ in 0..<(try reader.readCount()) { outcomes.append(try readOutcome(from: &reader)) }
        guard reader.isAtEnd else { throw DecodingFailure("trailing bytes after the outcomes") }
        return outcomes
    }

    private static func write(_ outcome: Result<CommandResult, EngineError>, to writer: inout ByteWriter) {
        switch outcome {
        case .success(let result):
            writer.write(UInt64(0))
            writer.write(result)
        case .failure(.notLeader(let leader)):
            writer.write(UInt64(1))
            writer.write(optional: leader) { $0.write($1) }
        case .failure(.outcomeUnknown(let reason)):
            writer.write(UInt64(2))
            writer.write(reason)
        // Tag 3, an error as text, is what older nodes sent for the rest: never written now.
        case .failure(.storeFailed(let reason)):
            writer.write(UInt64(4))
            writer.write(reason)
        case .failure(.noLeader):
            writer.write(UInt64(5))
        case .failure(.peerFailed(let reason)):
            writer.write(UInt64(6))
            writer.write(reason)
        case .failure(.staleRequest):
            writer.write(UInt64(7))
        }
    }

    private static func readOutcome(from reader: inout ByteReader) throws(DecodingFailure) -> Result<CommandResult, EngineError> {
        switch try reader.readUInt64() {
        case 0: return .success(try reader.readResult())
        case 1: return .failure(.notLeader(leader: try reader.read { (reader) throws(DecodingFailure) in try reader.readInt() }))
        case 2: return .failure(.outcomeUnknown(try reader.readString()))
        case 3: return .failure(.peerFailed("the leader refused: \(try reader.readString())"))
        case 4: return .failure(.storeFailed(try reader.readString()))
        case 5: return .failure(.noLeader)
        case 6: return .failure(.peerFailed(try reader.readString()))
        case 7: return .failure(.staleRequest)
        case let tag: throw DecodingFailure("unknown outcome tag \(tag)")
        }
    }
}

extension PeerWire {
    static let snapshotPath = "/cluster/v1/snapshot"

    /// One piece of a snapshot on its way to a follower, with everything the follower needs to
    /// place it: chunks of one encoding (`encodingID`) are assembled in order, and the follower
    /// answers with the offset it wants next, so a transfer resumes where it broke off.
    struct SnapshotChunk: Sendable, Equatable {
        /// The leader's term and heartbeat round, for the `installSnapshot` message the
        /// assembled snapshot becomes.
        let leaderTerm: Term
        let round: UInt64
        let snapshotIndex: LogIndex
        let snapshotTerm: Term
        /// Random per encoding: two encodings of one snapshot need not have the same bytes.
        let encodingID: UInt64
        let totalBytes: UInt64
        let offset: UInt64
        /// Empty in a probe, which asks only where to resume.
        let bytes: [UInt8]

        /// The header's largest size: seven varints.
        static let maxHeaderBytes = 7 * 10

        var encoded: [UInt8] {
            var writer = ByteWriter(capacity: Self.maxHeaderBytes + bytes.count)
            for value in [leaderTerm, round, snapshotIndex, snapshotTerm, encodingID, totalBytes, offset] { writer.write(value) }
            writer.write(raw: bytes)
            return writer.bytes
        }

        init(
            leaderTerm: Term, round: UInt64, snapshotIndex: LogIndex, snapshotTerm: Term, encodingID: UInt64, totalBytes: UInt64,
            offset: UInt64, bytes: [UInt8]
        ) {
            self.leaderTerm = leaderTerm
            self.round = round
            self.snapshotIndex = snapshotIndex
            self.snapshotTerm = snapshotTerm
            self.encodingID = encodingID
            self.totalBytes = totalBytes
            self.offset = offset
            self.bytes = bytes
        }

        init(encoded: [UInt8]) throws(DecodingFailure) {
            var reader = ByteReader(encoded)
            leaderTerm = try reader.readUInt64()
            round = try reader.readUInt64()
            snapshotIndex = try reader.readUInt64()
            snapshotTerm = try reader.readUInt64()
            encodingID = try reader.readUInt64()
            totalBytes = try reader.readUInt64()
            offset = try reader.readUInt64()
            bytes = reader.readRemaining()
            guard offset <= totalBytes, UInt64(bytes.count) <= totalBytes - offset else {
                throw DecodingFailure("chunk at \(offset) of \(bytes.count) bytes runs past the snapshot's \(totalBytes) bytes")
            }
        }
    }

    static func encode(offset: UInt64) -> [UInt8] {
        var writer = ByteWriter()
        writer.write(offset)
        return writer.bytes
    }

    static func decodeOffset(_ bytes: [UInt8]) throws(DecodingFailure) -> UInt64 {
        var reader = ByteReader(bytes)
        let offset = try reader.readUInt64()
        guard reader.isAtEnd else { throw DecodingFailure("trailing bytes after an offset") }
        return offset
    }
}
