import ClusterHarness
import Foundation
import MockPagerDuty
import RelayTestSupport
import Testing

/// A PagerDuty (or a proxy in front of it) that takes longer than the leader lease to answer:
/// three nodes behind HAProxy deliver through it, in per-key order, with a `kill -9` of the
/// leader mid-stream, and no older term's request reaches it after a newer term sent for the
/// same key. Before per-key intents, every attempt was cut at the lease (840 ms) and only first
/// triggers were ever delivered, over and over.
@Suite(.serialized, RelayLoad.cluster) struct SlowUpstreamTests {
    static let deliveryConcurrency = 128

    @Test(arguments: [1_500, 5_000])
    func aSlowUpstreamGetsEverythingInOrderThroughALeaderKill(answerMilliseconds: Int) async throws {
        try await ClusterRig.run(
            extraSettings: ["delivery_concurrency: \(Self.deliveryConcurrency)"],
            upstreamReply: .delayed(milliseconds: answerMilliseconds, .accept)
        ) { rig in
            let started = ContinuousClock.now
            let stream = EventStream(url: rig.cluster.loadBalancerURL, clients: 2, pause: .milliseconds(150))
            // The kill must catch requests on their way: wait until the slow upstream has taken
            // some, with the clients well under way.
            try await ClusterRig.waitUntil("requests at the upstream and 30 events acknowledged") {
                await !rig.upstream.deliveries.isEmpty && stream.acknowledgedCount >= 30
            }
            let leader = try await rig.leader()
            await rig.cluster.kill9(leader)
            let acknowledgedAtKill = stream.acknowledgedCount
            let successor = try await rig.leader()
            #expect(successor != leader)
            try await rig.cluster.start(leader)
            try await rig.waitUntilReady(LocalCluster.nodes)
            // The new leader takes events, and the clients run at least 20 s in all.
            try await ClusterRig.waitUntil("30 more events acknowledged after the kill, 20 s of load") {
                stream.acknowledgedCount >= acknowledgedAtKill + 30 && ContinuousClock.now - started >= .seconds(20)
            }
            let outcome = await stream.stop()
            let audit = await rig.audit(outcome, timeout: .seconds(120))
            #expect(outcome.gaveUp == 0, "a client gave up on an event")
            #expect(audit.lost.isEmpty, "\(audit)")
            #expect(audit.orderViolations.isEmpty, "\(audit)")
            #expect(audit.staleTermDeliveries.isEmpty, "\(audit)")
            #expect(audit.duplicatesBeyondBound.isEmpty, "\(audit)")
            // Every extra request is a key that was in flight at a leader change: at most
            // delivery_concurrency of them per change.
            let leaderChanges = max(audit.terms.count - 1, 0)
            let bound = outcome.acknowledged.count + leaderChanges * Self.deliveryConcurrency
            #expect(audit.requests <= bound, "\(audit.requests) requests, bound \(bound)")
            #expect(audit.terms.count >= 2, "the kill should have moved delivery to a new term: \(audit)")
            let resolves = outcome.acknowledged.filter { $0.action == "resolve" }.count
            #expect(resolves > 0, "no resolve was acknowledged")
            print(
                "slow upstream \(answerMilliseconds) ms: \(outcome.acknowledged.count) acknowledged (\(resolves) resolves), "
                    + "\(audit.requests) requests (bound \(bound)), duplicated events \(audit.duplicates.count); \(audit)")
        }
    }
}
