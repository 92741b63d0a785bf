import ClusterCore
import Testing

/// The protocol's hard cases, each as a short transcript against `ScriptedCluster`.
@Suite struct ScenarioTests {
    @Test func aClusterElectsOneLeaderWhomEveryoneFollows() {
        var cluster = ScriptedCluster()
        cluster.run(2_000)
        let leader = try! #require(cluster.leader)
        let term = cluster.nodes[leader]!.term
        for id in cluster.members {
            #expect(cluster.nodes[id]!.term == term)
            #expect(cluster.nodes[id]!.leaderID == leader)
        }
        #expect(cluster.leaseHolders == [leader])
        #expect(cluster.nodes[leader]!.mayStartDelivery(now: cluster.local(leader)))
    }

    @Test func aLeaderCrashWithEntriesInFlightLosesOnlyWhatWasNeverCommitted() throws {
        var cluster = ScriptedCluster()
        cluster.run(2_000)
        let first = try #require(cluster.leader)
        _ = cluster.propose([1], at: first)
        cluster.run(100)
        #expect(cluster.members.allSatisfy { cluster.nodes[$0]!.machine.applied == [1] })
        // Entry 2 is written on the leader, but the leader dies before anyone else hears of it.
        cluster.isolate(first)
        _ = cluster.propose([2], at: first)
        cluster.crash(first)
        cluster.network.removeAll { $0.from == first }  // its appends die with it
        cluster.heal()
        cluster.run(3_000)
        let second = try #require(cluster.leader)
        #expect(second != first)
        _ = cluster.propose([3], at: second)
        cluster.run(100)
        // The old leader comes back: its unreplicated entry is replaced, never applied.
        cluster.start(first)
        cluster.run(1_000)
        for id in cluster.members { #expect(cluster.nodes[id]!.machine.applied == [1, 3]) }
    }

    @Test func aPartitionedLeaderStepsDownAndStopsDeliveringBeforeAnotherStarts() throws {
        var cluster = ScriptedCluster()
        cluster.run(2_000)
        let old = try #require(cluster.leader)
        cluster.isolate(old)
        var oldStoppedAt: Int64?
        var newStartedAt: Int64?
        cluster.run(4_000) { cluster in
            if oldStoppedAt == nil, !cluster.nodes[old]!.mayStartDelivery(now: cluster.local(old)) { oldStoppedAt = cluster.now }
            for id in cluster.members where id != old && newStartedAt == nil {
                if cluster.nodes[id]!.mayStartDelivery(now: cluster.local(id)) { newStartedAt = cluster.now }
            }
            #expect(cluster.leaseHolders.count <= 1)
        }
        #expect(cluster.nodes[old]!.role != .leader)
        let stopped = try #require(oldStoppedAt)
        let started = try #require(newStartedAt)
        // The old leader's last possible send started before the new leader may start any; keys
        // it may still be sending wait out its deadline (`DeliveryFenceTests`).
        #expect(stopped < started)
    }

    @Test func aNodeThatRejoinsAfterCampaigningAloneDoesNotDisruptTheLeader() throws {
        var cluster = ScriptedCluster()
        cluster.run(2_000)
        let leader = try #require(cluster.leader)
        let term = cluster.nodes[leader]!.term
        let loner = cluster.members.first { $0 != leader }!
        cluster.isolate(loner)
        // Alone, it times out again and again, but pre-vote keeps it from raising its term.
        cluster.run(5_000)
        #expect(cluster.nodes[loner]!.term == term)
        cluster.heal()
        cluster.run(2_000)
        #expect(cluster.leader == leader)
        #expect(cluster.nodes[leader]!.term == term)
        #expect(cluster.nodes[loner]!.leaderID == leader)
    }

    @Test func aVoteRequestFromAHigherTermIsIgnoredWhileTheLeaderIsHeardFrom() throws {
        var cluster = ScriptedCluster()
        cluster.run(2_000)
        let leader = try #require(cluster.leader)
        let term = cluster.nodes[leader]!.term
        let follower = cluster.members.first { $0 != leader }!
        let other = cluster.members.first { $0 != leader && $0 != follower }!
        // A stale node claiming a much higher term asks for a vote.
        cluster.deliver(Message(from: other, to: follower, term: term + 5, body: .voteRequest(lastLogIndex: 0, lastLogTerm: 0)))
        #expect(cluster.nodes[follower]!.term == term)
        #expect(cluster.nodes[follower]!.hardState.votedFor != other)
        cluster.run(500)
        #expect(cluster.leader == leader)
    }

    @Test func aLeaderPausedLongerThanItsLeaseWakesUpWithoutOne() throws {
        var cluster = ScriptedCluster()
        cluster.run(2_000)
        let old = try #require(cluster.leader)
        cluster.paused.insert(old)
        cluster.run(3_000) { cluster in #expect(cluster.leaseHolders.count <= 1) }
        let new = try #require(cluster.leader)
        #expect(new != old)
        // Its clock kept running while it was stopped: it still thinks it leads, but its lease
        // is over, so it may not deliver.
        #expect(cluster.nodes[old]!.role == .leader)
        #expect(cluster.nodes[old]!.leaseRemainingMilliseconds(now: cluster.local(old)) == 0)
        #expect(!cluster.nodes[old]!.mayStartDelivery(now: cluster.local(old)))
        cluster.paused.remove(old)
        cluster.run(500)
        #expect(cluster.nodes[old]!.role == .follower)
        #expect(cluster.nodes[old]!.leaderID == new)
    }

    @Test func aFollowerThatGrantsAPreVoteWaitsForTheVoteRequestInsteadOfSplittingTheVote() throws {
        var cluster = ScriptedCluster()
        cluster.run(2_000)
        let old = try #require(cluster.leader)
        let term = cluster.nodes[old]!.term
        cluster.paused.insert(old)
        var steps = 0
        while !cluster.members.contains(where: { cluster.nodes[$0]!.role == .candidate }) {
            cluster.run(1)
            steps += 1
            try #require(steps < 3_000, "nobody campaigned after the leader froze")
        }
        let candidate = cluster.members.first { cluster.nodes[$0]!.role == .candidate }!
        let other = cluster.members.first { $0 != old && $0 != candidate }!
        // Its vote request is slow to arrive, as when the candidate's disk is slow to make the
        // new term durable. The follower that granted the pre-vote must not campaign meanwhile.
        var held = cluster.network.filter { $0.from == candidate && $0.to == other }
        cluster.network.removeAll { $0.from == candidate && $0.to == other }
        #expect(!held.isEmpty)
        cluster.run(cluster.timing.minimumElectionTimeoutMilliseconds - 50) { cluster in
            held += cluster.network.filter { $0.from == candidate && $0.to == other }
            cluster.network.removeAll { $0.from == candidate && $0.to == other }
            #expect(cluster.nodes[other]!.role == .follower, "campaigned while the pre-candidate it granted was still electing")
        }
        #expect(cluster.nodes[other]!.term == term)
        for message in held { cluster.deliver(message) }
        cluster.run(10)
        #expect(cluster.leader == candidate)
        #expect(cluster.nodes[candidate]!.term == term + 1)
    }

    @Test func aFollowerBackOnAnEmptyDiskCatchesUpFromASnapshotBeforeItVotes() throws {
        var cluster = ScriptedCluster(snapshotThreshold: 5)
        let (_, replaced) = try cluster.followerBackOnAnEmptyDisk(after: 1...20, millisecondsEach: 20)
        #expect(!cluster.nodes[replaced]!.mayVote)
        cluster.run(500)
        #expect(cluster.nodes[replaced]!.mayVote)
        #expect(cluster.nodes[replaced]!.snapshotIndex > 0)
        #expect(cluster.nodes[replaced]!.machine.applied == Array(1...20))
    }

    @Test func duplicatedAndReorderedAppendsLeaveTheLogIntact() throws {
        var cluster = ScriptedCluster()
        cluster.run(2_000)
        let leader = try #require(cluster.leader)
        let follower = cluster.members.first { $0 != leader }!
        // Hold every message to the follower while three proposals go out one by one.
        cluster.cut.insert([leader, follower])
        for value in [10, 20, 30] { _ = cluster.propose([value], at: leader) }
        let appends = cluster.network.filter { $0.to == follower }
        #expect(appends.count == 3)
        cluster.network.removeAll { $0.to == follower }
        cluster.cut = []
        // Newest first, then each one again.
        for message in appends.reversed() + appends { cluster.deliver(message) }
        cluster.run(200)
        #expect(cluster.nodes[follower]!.entries.map(\.term) == cluster.nodes[leader]!.entries.map(\.term))
        #expect(cluster.nodes[follower]!.machine.applied == [10, 20, 30])
        #expect(cluster.nodes[leader]!.machine.applied == [10, 20, 30])
    }

    /// Isolates whoever leads, again and again, with clocks at the drift bound: the leader's
    /// is the slowest allowed and every follower's the fastest, so its lease ends (on its own
    /// clock) just before a follower may vote. Returns the most nodes that held a lease at once.
    static func mostConcurrentLeases(faults: ProtocolFaults) -> Int {
        let drift = 0.19
        var most = 0
        for slow in 1...3 {
            var rates: [NodeID: Double] = [1: 1 + drift / 2, 2: 1 + drift / 2, 3: 1 + drift / 2]
            rates[slow] = 1 - drift / 2
            var cluster = ScriptedCluster(rates: rates, faults: faults)
            cluster.timing.maxClockDrift = drift
            for id in cluster.members { cluster.start(id) }
            cluster.run(2_000)
            for _ in 0..<20 {
                guard let leader = cluster.leader else { break }
                cluster.isolate(leader)
                cluster.run(2_500) { cluster in most = max(most, cluster.leaseHolders.count) }
                cluster.heal()
                cluster.run(500)
            }
        }
        return most
    }

    @Test func clocksDriftingAtTheBoundNeverGiveTwoLeases() {
        #expect(Self.mostConcurrentLeases(faults: .none) == 1)
    }

    #if DEBUG
        @Test func aLeaseThatIgnoresDriftOverlapsTheNextOne() {
            #expect(Self.mostConcurrentLeases(faults: .leaseIgnoresDrift) == 2)
        }
    #endif

    @Test func unsafeTimingsAreRefusedWithAReason() {
        #expect(throws: TimingError.self) {
            try ClusterTiming(heartbeatIntervalMilliseconds: 400, minimumElectionTimeoutMilliseconds: 1_000).validate()
        }
        #expect(throws: TimingError.self) { try ClusterTiming(maxClockDrift: 0.5).validate() }
        #expect(throws: TimingError.self) { try ClusterTiming(upstreamTimeoutMilliseconds: 400_000).validate() }
        #expect(throws: TimingError.self) { try ClusterTiming(deliveryMarginMilliseconds: 0).validate() }
        #expect(throws: TimingError.self) { try ClusterTiming(deliveryMarginMilliseconds: 500).validate() }
        #expect(throws: Never.self) { try ClusterTiming().validate() }
        // An upstream timeout ten times the lease is safe: intents fence it per key.
        #expect(throws: Never.self) {
            try ClusterTiming(minimumElectionTimeoutMilliseconds: 1_000, upstreamTimeoutMilliseconds: 10_000).validate()
        }
    }

    @Test func aLeaderHandsOverToACaughtUpFollowerWhoWinsAtOnceDespiteTheLease() throws {
        var cluster = ScriptedCluster()
        cluster.run(2_000)
        let first = try #require(cluster.leader)
        _ = cluster.propose([1, 2], at: first)
        cluster.run(20)
        let before = cluster.now
        var handedOver = false
        while !handedOver {
            let (done, ready) = cluster.nodes[first]!.transferLeadership(now: cluster.local(first))
            cluster.handle(first, ready)
            handedOver = done
            if !done { cluster.run(1) }
        }
        // The old leader gave up its lease the moment it handed over.
        #expect(cluster.nodes[first]!.role == .follower)
        #expect(cluster.nodes[first]!.leaseRemainingMilliseconds(now: cluster.local(first)) == 0)
        #expect(!cluster.nodes[first]!.mayStartDelivery(now: cluster.local(first)))
        // The target campaigns without waiting out an election timeout, and the third node votes
        // for it although it heard from the old leader within its lease.
        cluster.run(50)
        let second = try #require(cluster.leader)
        #expect(second != first)
        #expect(cluster.now - before < cluster.timing.minimumElectionTimeoutMilliseconds / 4)
        _ = cluster.propose([3], at: second)
        cluster.run(100)
        for id in cluster.members { #expect(cluster.nodes[id]!.machine.applied == [1, 2, 3]) }
        #expect(cluster.leaseHolders == [second])
    }

    @Test func aTransferWaitsForAFollowerToHaveTheWholeLog() throws {
        var cluster = ScriptedCluster()
        cluster.run(2_000)
        let leader = try #require(cluster.leader)
        let others = cluster.members.filter { $0 != leader }
        // Nobody can hear the leader: no follower has the new entry, so no handover yet.
        cluster.isolate(leader)
        _ = cluster.propose([7], at: leader)
        let (handedOver, ready) = cluster.nodes[leader]!.transferLeadership(now: cluster.local(leader))
        cluster.handle(leader, ready)
        #expect(!handedOver)
        #expect(cluster.nodes[leader]!.role == .leader)
        #expect(
            cluster.network.allSatisfy { message in
                if case .timeoutNow = message.body { return false }
                return true
            })
        #expect(others.allSatisfy { cluster.nodes[$0]!.role == .follower })
    }

    @Test func aClusterOfOneLeadsAtOnceAndDeliversWithoutALease() {
        // An upstream timeout far longer than any lease: unsafe with peers, irrelevant alone.
        let timing = ClusterTiming(
            heartbeatIntervalMilliseconds: 50, minimumElectionTimeoutMilliseconds: 500, maxClockDrift: 0.1,
            upstreamTimeoutMilliseconds: 10_000, deliveryMarginMilliseconds: 20)
        var node = RaftNode<Counter>(id: 1, members: [1], timing: timing, initialMachine: Counter(), durable: nil, seed: 1, now: 0)
        let election = node.tick(now: 0)
        #expect(node.role == .leader)
        _ = node.persisted(through: election.entries.last!.index, now: 0)
        let (_, ready) = node.propose([5], now: 1)!
        _ = node.persisted(through: ready.entries.last!.index, now: 1)
        #expect(node.machine.applied == [5])
        #expect(node.mayStartDelivery(now: 1))
    }

    @Test func aSilentFollowerIsSentAtMostAWindowOfAppends() throws {
        var cluster = ScriptedCluster()
        cluster.run(2_000)
        let leader = try #require(cluster.leader)
        let silent = cluster.members.first { $0 != leader }!
        cluster.paused.insert(silent)
        for value in 1...50 {
            _ = cluster.propose([value], at: leader)
            cluster.run(5)
        }
        let appends = cluster.network.filter { message in
            guard message.to == silent, case .append = message.body else { return false }
            return true
        }
        let heartbeats = cluster.network.filter { $0.to == silent && $0.isHeartbeat }
        // Flow control: the leader waits for answers instead of queueing all 50 entries, while
        // its heartbeats keep coming.
        #expect(appends.count <= RaftNode<Counter>.maxAppendsInFlight)
        #expect(heartbeats.count >= 2)
        cluster.paused.remove(silent)
        cluster.run(2_000)
        #expect(cluster.nodes[silent]!.machine.applied == Array(1...50))
    }

    @Test func aHeartbeatCommitsNoFurtherThanTheFollowersLogIsKnownToMatch() throws {
        var cluster = ScriptedCluster()
        cluster.run(2_000)
        let leader = try #require(cluster.leader)
        let follower = cluster.members.first { $0 != leader }!
        let before = cluster.nodes[follower]!.commitIndex
        // An invented leader's heartbeat of the current term claims a commit index far beyond
        // anything the follower was sent: the follower must not take it.
        let heartbeat = Message<Counter>(
            from: leader, to: follower, term: cluster.nodes[leader]!.term, body: .heartbeat(leaderCommit: before + 100, round: 1))
        cluster.deliver(heartbeat)
        #expect(cluster.nodes[follower]!.commitIndex == before)
        #expect(cluster.nodes[follower]!.commitIndex <= cluster.nodes[follower]!.lastLogIndex)
    }

    @Test func aNodeThatCampaignsAndLosesCommitsNothingItMatchedInTheOlderTerm() throws {
        // Seed 17400: a follower matched an entry of term t, campaigned in t + 1 and lost; the
        // winner's first heartbeat then committed that entry, which the winner had replaced.
        var cluster = ScriptedCluster()
        cluster.run(2_000)
        let leader = try #require(cluster.leader)
        let follower = cluster.members.first { $0 != leader }!
        let winner = cluster.members.first { $0 != leader && $0 != follower }!
        let term = cluster.nodes[leader]!.term
        // The leader's append of a new entry reaches the follower alone, and nothing commits it.
        let proposed = cluster.propose([42], at: leader)
        let index = try #require(proposed?.last)
        let sent = cluster.network
        cluster.network = []
        for message in sent where message.to == follower { cluster.deliver(message) }
        cluster.network = []
        #expect(cluster.nodes[follower]!.lastLogIndex == index)
        #expect(cluster.nodes[follower]!.commitIndex < index)

        // The leader falls silent; the follower campaigns in term t + 1.
        let later = cluster.local(follower) + 10_000
        _ = cluster.nodes[follower]!.tick(now: later)
        #expect(cluster.nodes[follower]!.role == .preCandidate)
        let grant = Message<Counter>(from: winner, to: follower, term: term + 1, body: .preVoteResponse(granted: true))
        _ = cluster.nodes[follower]!.receive(grant, now: later)
        #expect(cluster.nodes[follower]!.role == .candidate)
        #expect(cluster.nodes[follower]!.term == term + 1)

        // Another node wins term t + 1 with an entry of its own at `index`; its first heartbeat
        // says `index` is committed. What the follower holds there is term t's entry.
        let heartbeat = Message<Counter>(from: winner, to: follower, term: term + 1, body: .heartbeat(leaderCommit: index, round: 1))
        _ = cluster.nodes[follower]!.receive(heartbeat, now: later + 1)
        #expect(cluster.nodes[follower]!.role == .follower)
        #expect(cluster.nodes[follower]!.commitIndex < index, "committed term \(term)'s entry on a heartbeat of term \(term + 1)")
    }

    @Test func anIdleLeaderCatchesUpAFollowerThatLostItsDiskThroughHeartbeats() throws {
        var cluster = ScriptedCluster()
        cluster.run(2_000)
        let leader = try #require(cluster.leader)
        for value in 1...5 { _ = cluster.propose([value], at: leader) }
        cluster.run(200)
        let replaced = cluster.members.first { $0 != leader }!
        cluster.crash(replaced)
        cluster.start(replaced, lostDisk: true)
        // No new entries: only the heartbeat answers tell the leader that this follower's log
        // is gone.
        cluster.run(1_000)
        #expect(cluster.nodes[replaced]!.machine.applied == Array(1...5))
        #expect(cluster.nodes[replaced]!.mayVote)
    }

    @Test func aFollowerWhoseAppendWasLostWhileAnAnswerCameTwiceStillGetsTheEntries() throws {
        var cluster = ScriptedCluster()
        cluster.run(2_000)
        let leader = try #require(cluster.leader)
        let follower = cluster.members.first { $0 != leader }!
        _ = cluster.propose([1], at: leader)
        _ = cluster.propose([2], at: leader)
        let isAppend = { (message: Message<Counter>) -> Bool in
            if case .append = message.body { return message.from == leader && message.to == follower }
            return false
        }
        let appends = cluster.network.filter(isAppend)
        try #require(appends.count == 2)
        cluster.network.removeAll(where: isAppend)
        // The other follower's answers commit both entries first, so no later commit sends this
        // follower anything. Then its second append is lost, and the answer to the first arrives
        // twice: the leader's count of appends in flight reaches zero while the lost one is
        // unanswered, and the resend on silence never fires.
        cluster.run(20)
        #expect(cluster.nodes[leader]!.commitIndex == 3)
        cluster.deliver(appends[0])
        let answers = cluster.network.filter { $0.from == follower && $0.to == leader }
        cluster.network.removeAll { $0.from == follower && $0.to == leader }
        for answer in answers {
            cluster.deliver(answer)
            cluster.deliver(answer)
        }
        // Only heartbeats from here on (seed 9818): their answers show the leader what the
        // follower lacks.
        cluster.run(1_000)
        #expect(cluster.nodes[follower]!.machine.applied == [1, 2])
    }

    /// A lost snapshot is sent again as it was, not remade from the leader's newer state: a
    /// transfer that was cut resumes the same snapshot, and the table copy a new one costs is
    /// paid once per catch-up, not once per try.
    @Test func aSnapshotLostOnItsWayIsSentAgainAsItWas() throws {
        var cluster = ScriptedCluster(snapshotThreshold: 10)
        let (leader, replaced) = try cluster.followerBackOnAnEmptyDisk(after: 1...30, millisecondsEach: 5)
        var sentIndexes: [LogIndex] = []
        let losesSnapshots = { (cluster: inout ScriptedCluster) in
            cluster.network.removeAll { message in
                guard message.to == replaced, case .installSnapshot(let snapshot, _) = message.body else { return false }
                sentIndexes.append(snapshot.index)
                return true
            }
        }
        for value in 31...45 {
            _ = cluster.propose([value], at: leader)
            cluster.run(100, check: losesSnapshots)
        }
        #expect(sentIndexes.count >= 2)
        #expect(Set(sentIndexes).count == 1)
        #expect(cluster.nodes[leader]!.commitIndex > sentIndexes.first ?? .max)
        cluster.run(2_000)
        #expect(cluster.nodes[replaced]!.machine.applied == Array(1...45))
    }

    @Test func aLeaderSendingItsSnapshotKeepsItAcrossTheCompactionThreshold() throws {
        var cluster = ScriptedCluster(snapshotThreshold: 10)
        let (leader, replaced) = try cluster.followerBackOnAnEmptyDisk(after: 1...30, millisecondsEach: 5)
        // The snapshot is lost on its way, again and again, as if its transfer took long.
        let losesSnapshots = { (cluster: inout ScriptedCluster) in
            cluster.network.removeAll { message in
                guard message.to == replaced, case .installSnapshot = message.body else { return false }
                return true
            }
        }
        cluster.run(200, check: losesSnapshots)
        let sent = cluster.nodes[leader]!.snapshotIndex
        for value in 31...60 {
            _ = cluster.propose([value], at: leader)
            cluster.run(5, check: losesSnapshots)
        }
        #expect(cluster.nodes[leader]!.snapshotIndex == sent)
        #expect(cluster.nodes[leader]!.peerProgress.first { $0.id == replaced }?.needsSnapshot == true)
        cluster.run(2_000)
        #expect(cluster.nodes[replaced]!.machine.applied == Array(1...60))
    }
}
