import RelayCore
import Testing

@testable import ClusterCore
@testable import RelayNode

/// The leader names a follower whose catch-up stands still, and one that does not answer, in
/// `/v1/cluster`'s problems; a follower making progress, however slowly, is not named.
@Suite struct CatchUpProblemTests {
    static let now: Int64 = 1_000_000

    func view(role: Role = .leader, peer: RaftNode<RelayStateMachine>.PeerProgress) -> RelayEngine.ClusterView {
        RelayEngine.ClusterView(
            nodeID: 1, role: role, term: 4, leaderID: 1, leaseRemainingMilliseconds: 900, commitIndex: 1_000, appliedIndex: 1_000,
            lastLogIndex: 1_000, snapshotIndex: 900, applyLag: 0, hasQuorumContact: true, mayVote: true, awaitingDiskDecision: false,
            peers: [peer], nowMilliseconds: Self.now)
    }

    func peer(lastContactAgo: Int64, matchAdvancedAgo: Int64) -> RaftNode<RelayStateMachine>.PeerProgress {
        .init(
            id: 2, matchIndex: 400, lastContactMilliseconds: Self.now - lastContactAgo, needsSnapshot: true,
            matchAdvancedAtMilliseconds: Self.now - matchAdvancedAgo)
    }

    func transfer(progressAgo: Int64, error: String?) -> SnapshotTransfers.Progress {
        .init(
            node: 2, snapshotIndex: 900, bytesDone: 4_096, totalBytes: 1_000_000, startedAtMilliseconds: Self.now - 60_000,
            lastProgressAtMilliseconds: Self.now - progressAgo, lastError: error)
    }

    @Test func aFollowerWhoseCatchUpStandsStillIsNamedWithTheLastError() {
        let problems = OperationsRoutes.peerProblems(
            view(peer: peer(lastContactAgo: 50, matchAdvancedAgo: 40_000)),
            outgoing: [2: transfer(progressAgo: 35_000, error: "HTTP 507: cannot stage the snapshot")])
        #expect(problems.count == 1)
        #expect(problems.first?.contains("catch-up of node 2 is stuck: 600 entries behind, no progress for 35 s") == true)
        #expect(problems.first?.contains("snapshot at 4096 of 1000000 bytes; last error: HTTP 507") == true)
    }

    @Test func aFollowerStillReceivingSnapshotBytesIsNotNamed() {
        let problems = OperationsRoutes.peerProblems(
            view(peer: peer(lastContactAgo: 50, matchAdvancedAgo: 40_000)), outgoing: [2: transfer(progressAgo: 1_000, error: nil)])
        #expect(problems.isEmpty)
    }

    @Test func aSilentFollowerIsNamedAsNotAnswering() {
        let problems = OperationsRoutes.peerProblems(view(peer: peer(lastContactAgo: 12_000, matchAdvancedAgo: 12_000)), outgoing: [:])
        #expect(problems == ["node 2 is not answering (silent for 12 s), 600 entries behind"])
    }

    @Test func onlyTheLeaderNamesItsFollowers() {
        let problems = OperationsRoutes.peerProblems(
            view(role: .follower, peer: peer(lastContactAgo: 12_000, matchAdvancedAgo: 40_000)), outgoing: [:])
        #expect(problems.isEmpty)
    }
}
