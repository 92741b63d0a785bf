import ClusterHarness
import Foundation
import MockPagerDuty
import RelayClient
import RelayTestSupport
import Testing

/// The design note's real-process checks: three `pdrelay` processes behind HAProxy, clients
/// logging every 202 they get, an upstream recording every delivery with its term. Each fault
/// happens mid-stream; afterwards nothing acknowledged is lost, no key goes backwards, no stale
/// term delivers after a newer one, and duplicates stay within one per leader change.
@Suite(.serialized, RelayLoad.cluster) struct ClusterTests {
    static let lease = Duration.milliseconds(990)

    private func expectClean(_ audit: DeliveryAudit, _ outcome: EventStream.Outcome, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(outcome.acknowledged.count > 0, sourceLocation: sourceLocation)
        #expect(outcome.gaveUp == 0, "a client gave up on an event", sourceLocation: sourceLocation)
        #expect(audit.lost.isEmpty, "\(audit)", sourceLocation: sourceLocation)
        #expect(audit.orderViolations.isEmpty, "\(audit)", sourceLocation: sourceLocation)
        #expect(audit.staleTermDeliveries.isEmpty, "\(audit)", sourceLocation: sourceLocation)
        #expect(audit.duplicatesBeyondBound.isEmpty, "\(audit)", sourceLocation: sourceLocation)
        print("audit: \(outcome.acknowledged.count) acknowledged, \(outcome.failedAttempts) retried answers; \(audit)")
    }

    @Test func killingTheLeaderMidStreamLosesNothing() async throws {
        try await ClusterRig.run { rig in
            let stream = EventStream(url: rig.cluster.loadBalancerURL, clients: 4)
            try await ClusterRig.trafficFlows(stream)
            let leader = try await rig.leader()
            await rig.cluster.kill9(leader)
            _ = try await rig.leader(otherThan: leader)
            try await ClusterRig.trafficFlows(stream)
            try await rig.cluster.start(leader)
            try await rig.waitUntilReady(LocalCluster.nodes)
            try await ClusterRig.trafficFlows(stream)
            let outcome = await stream.stop()
            expectClean(await rig.audit(outcome), outcome)
        }
    }

    @Test func aLeaderPausedForTwiceItsLeaseIsReplacedAndDoesNotDeliverStale() async throws {
        try await ClusterRig.run { rig in
            let stream = EventStream(url: rig.cluster.loadBalancerURL, clients: 4)
            try await ClusterRig.trafficFlows(stream)
            let leader = try await rig.leader()
            rig.cluster.pause(leader)
            try await Task.sleep(for: Self.lease * 2)
            rig.cluster.resume(leader)
            try await rig.waitUntilReady(LocalCluster.nodes)
            try await ClusterRig.trafficFlows(stream)
            let outcome = await stream.stop()
            let audit = await rig.audit(outcome)
            expectClean(audit, outcome)
            #expect(audit.terms.count >= 2, "the pause should have cost the leader its term: \(audit)")
        }
    }

    @Test func anIsolatedLeaderStepsDownAndTheMajorityCarriesOn() async throws {
        try await ClusterRig.run(withLinkProxies: true) { rig in
            let stream = EventStream(url: rig.cluster.loadBalancerURL, clients: 4)
            try await ClusterRig.trafficFlows(stream)
            let leader = try await rig.leader()
            rig.isolate(leader, true)
            // The majority side elects a new leader; the old one loses its majority and steps down.
            _ = try await rig.leader(otherThan: leader, timeout: .seconds(20))
            // Requests that reached the cut-off node before the balancer dropped it wait there
            // up to leader_wait_milliseconds (3 s), then are retried elsewhere; the rest flow on.
            try await ClusterRig.trafficFlows(stream)
            let isolated = await rig.view(leader)
            #expect(isolated?["role"] as? String != "leader", "the isolated node still leads: \(isolated ?? [:])")
            #expect(isolated?["ready"] as? Bool == false)
            rig.isolate(leader, false)
            try await rig.waitUntilReady(LocalCluster.nodes)
            let outcome = await stream.stop()
            expectClean(await rig.audit(outcome), outcome)
        }
    }

    @Test func aFollowerWithAWipedDiskCatchesUpFromASnapshotBeforeItVotes() async throws {
        try await ClusterRig.run { rig in
            let stream = EventStream(url: rig.cluster.loadBalancerURL, clients: 4)
            let leader = try await rig.leader()
            let follower = LocalCluster.nodes.first { $0 != leader }!
            try await rig.cluster.terminate(follower)
            try rig.cluster.wipe(follower)
            // Enough traffic that the leader compacts its log past everything the follower had.
            let deadline = ContinuousClock.now + .seconds(30)
            while ((await rig.view(leader))?["snapshot_index"] as? Int ?? 0) < 300, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(100))
            }
            try await rig.cluster.start(follower)
            try await rig.waitUntilReady([follower])
            let view = await rig.view(follower)
            #expect((view?["snapshot_index"] as? Int ?? 0) >= 300, "the follower did not start from a snapshot: \(view ?? [:])")
            #expect(view?["voting"] as? Bool == true)
            let log = rig.cluster.log(follower)
            #expect(log.contains("the cluster has history: not voting until caught up"))
            #expect(log.contains("caught up after an empty-disk start"))
            let outcome = await stream.stop()
            expectClean(await rig.audit(outcome), outcome)
        }
    }

    @Test func aRollingRestartWithSIGTERMKeepsServing() async throws {
        try await ClusterRig.run { rig in
            let stream = EventStream(url: rig.cluster.loadBalancerURL, clients: 4)
            try await ClusterRig.trafficFlows(stream)
            // Followers first, the leader last, as the runbook says; each node must be ready again
            // before the next goes.
            let leader = try await rig.leader()
            for node in LocalCluster.nodes.filter({ $0 != leader }) + [leader] {
                try await rig.cluster.terminate(node)
                try await rig.cluster.start(node)
                try await rig.waitUntilReady(LocalCluster.nodes)
            }
            #expect(rig.cluster.log(leader).contains("handed leadership over for shutdown"))
            try await ClusterRig.trafficFlows(stream)
            let outcome = await stream.stop()
            expectClean(await rig.audit(outcome), outcome)
        }
    }
}
