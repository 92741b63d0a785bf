import ClusterCore
import EngineCore
import RelayCore
import Testing

@testable import RelayNode

/// A follower forwards its clients' commands to the leader and answers them with what the leader
/// said. Each of the leader's errors must arrive as itself: a failed store, read as a lost leader,
/// would have the follower retry a leader that can take nothing until it is restarted.
@Suite struct PeerWireTests {
    /// Every error the engine can give; the switch fails to compile when a case is added.
    static let everyError: [EngineError] = {
        let errors: [EngineError] = [
            .storeFailed("disk I/O error"), .notLeader(leader: 3), .notLeader(leader: nil), .noLeader,
            .outcomeUnknown("leadership was lost"), .peerFailed("connection reset"), .staleRequest,
        ]
        for error in errors {
            switch error {
            case .storeFailed, .notLeader, .noLeader, .outcomeUnknown, .peerFailed, .staleRequest: break
            }
        }
        return errors
    }()

    @Test func everyOutcomeCrossesThePeerLinkAsItself() throws {
        let outcomes: [Result<CommandResult, EngineError>] =
            [.success(.accepted(dedupKey: "db-1", eventNumber: 7)), .success(.repeatSuppressed(dedupKey: "db-1"))]
            + Self.everyError.map { .failure($0) }
        #expect(try PeerWire.decodeOutcomes(PeerWire.encode(outcomes: outcomes)) == outcomes)
    }

    @Test func anOlderNodesErrorAsTextStillReads() throws {
        // Tag 3 and a string: how a node before this change sent every other error.
        var writer = ByteWriter()
        writer.write(UInt64(1))
        writer.write(UInt64(3))
        writer.write("storeFailed(\"disk I/O error\")")
        let outcomes = try PeerWire.decodeOutcomes(writer.bytes)
        #expect(outcomes == [.failure(.peerFailed("the leader refused: storeFailed(\"disk I/O error\")"))])
    }

    @Test func anUnknownTagIsRefused() {
        var writer = ByteWriter()
        writer.write(UInt64(1))
        writer.write(UInt64(99))
        #expect(throws: DecodingFailure.self) { try PeerWire.decodeOutcomes(writer.bytes) }
    }

    @Test func forwardedCommandsCarryWhatIsLeftOfTheirHold() throws {
        let commands: [RelayCommand] = [.purge(EventFilter()), .retryDead(EventFilter())]
        let decoded = try PeerWire.decodeCommands(PeerWire.encode(commands: commands, holdRemainingMilliseconds: [640, nil]))
        #expect(decoded.map(\.command) == commands)
        #expect(decoded.map(\.holdRemainingMilliseconds) == [640, nil])
        // A hold already spent travels as zero: the leader refuses the command at once.
        #expect(
            try PeerWire.decodeCommands(PeerWire.encode(commands: [commands[0]], holdRemainingMilliseconds: [-5]))[0]
                .holdRemainingMilliseconds == 0)
    }

    @Test func aBatchFromANodeThatSentNoHoldsReadsWithNone() throws {
        // How a node before holds encoded a batch: the count and the commands, nothing after.
        var writer = ByteWriter()
        writer.write(UInt64(1))
        writer.write(RelayCommand.purge(EventFilter()))
        let decoded = try PeerWire.decodeCommands(writer.bytes)
        #expect(decoded == [PeerWire.Forwarded(command: .purge(EventFilter()), holdRemainingMilliseconds: nil)])
    }
}
