import ClusterCore
import RelayCore

/// The small binary answers of the peer API, beside `MessageCodec`'s batches.
enum PeerWire {
    static let messagesPath = "/cluster/v1/messages"
    static let forwardPath = "/cluster/v1/forward"
    static let statusPath = "/cluster/v1/status"
    /// A forwarded client command is one event: bounded like one.
    static let maxForwardBytes = 16 * 1_024 * 1_024

    /// What a fresh node asks its peers before it trusts its empty disk.
    struct Status: Sendable, Equatable {
        let term: Term
        let awaitingDiskDecision: Bool
        let recovering: Bool

        /// A peer that has never taken part in the cluster.
        var isFresh: Bool { term == 0 && !recovering }

        var encoded: [UInt8] {
            var writer = ByteWriter()
            writer.write(term)
            writer.write(awaitingDiskDecision)
            writer.write(recovering)
            return writer.bytes
        }

        init(term: Term, awaitingDiskDecision: Bool, recovering: Bool) {
            self.term = term
            self.awaitingDiskDecision = awaitingDiskDecision
            self.recovering = recovering
        }

        init(encoded: [UInt8]) throws(DecodingFailure) {
            var reader = ByteReader(encoded)
            self.init(term: try reader.readUInt64(), awaitingDiskDecision: try reader.readBool(), recovering: try reader.readBool())
        }
    }

    static func encode(_ outcome: Result<CommandResult, EngineError>) -> [UInt8] {
        var writer = ByteWriter()
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
        case .failure(let other):
            writer.write(UInt64(3))
            writer.write("\(other)")
        }
        return writer.bytes
    }

    static func decodeOutcome(_ bytes: [UInt8]) throws(DecodingFailure) -> Result<CommandResult, EngineError> {
        var reader = ByteReader(bytes)
        switch try reader.readUInt64() {
        case 0: return .success(try reader.readResult())
        case 1: return .failure(.notLeader(leader: try reader.read { (reader) throws(DecodingFailure) in try reader.readInt() }))
        case 2: return .failure(.outcomeUnknown(try reader.readString()))
        case 3: return .failure(.peerFailed("the leader refused: \(try reader.readString())"))
        case let tag: throw DecodingFailure("unknown outcome tag \(tag)")
        }
    }
}
