import ClusterHarness
import Foundation
import MockPagerDuty
import RelayTestSupport
import Testing

/// The peer stream under the transport faults a network between zones produces: connections
/// reset mid-frame, half-open connections, and a peer that stops reading. (A frame replayed
/// after a reconnect, or tampered with, is `PeerAuthenticationTests`'.) Each time the cluster
/// must notice by itself, redial, and lose or reorder nothing.
@Suite(RelayLoad.cluster) struct PeerStreamFaultTests {
    /// The sum of a counter's samples on one node, those whose labels contain `labels`.
    static func counter(_ rig: ClusterRig, _ node: Int, _ name: String, _ labels: String = "") async -> Int {
        guard let text = try? await rig.nodes[node]!.get("/metrics").text else { return 0 }
        return text.split(separator: "\n").filter { $0.hasPrefix(name + "{") && $0.contains(labels) }
            .compactMap { Int($0.split(separator: " ").last ?? "") }.reduce(0, +)
    }

    static func refusals(_ rig: ClusterRig, _ node: Int, _ reason: String) async -> Int {
        await counter(rig, node, "pdrelay_peer_stream_refusals_total", "reason=\"\(reason)\"")
    }

    /// Waits until every node is in contact with a majority and has applied at least what any of
    /// them had applied when the wait began. Traffic keeps flowing meanwhile, so the nodes'
    /// applied indexes are seldom equal at one instant; reaching a point fixed beforehand is the
    /// condition that cannot miss.
    static func allCaughtUp(_ rig: ClusterRig) async throws {
        var target = 0
        for node in LocalCluster.nodes { target = max(target, (await rig.view(node))?["applied_index"] as? Int ?? 0) }
        try await ClusterRig.waitUntil("all three nodes in contact and past applied index \(target)") {
            for node in LocalCluster.nodes {
                guard let view = await rig.view(node), view["in_contact_with_majority"] as? Bool == true,
                    let index = view["applied_index"] as? Int, index >= target
                else { return false }
            }
            return true
        }
    }

    static func expectClean(_ rig: ClusterRig, _ stream: EventStream) async {
        let outcome = await stream.stop()
        #expect(outcome.gaveUp == 0)
        let audit = await rig.audit(outcome)
        #expect(audit.lost.isEmpty, "\(audit)")
        #expect(audit.orderViolations.isEmpty, "\(audit)")
        #expect(audit.staleTermDeliveries.isEmpty, "\(audit)")
    }

    @Test func connectionsResetMidFrameLoseNothingAndAreNeverTakenForTampering() async throws {
        try await ClusterRig.run(withLinkProxies: true) { rig in
            let stream = EventStream(url: rig.cluster.loadBalancerURL, clients: 4)
            try await ClusterRig.trafficFlows(stream)
            // Every connection from now on is reset within 300 ms, whatever it is in the middle of.
            for proxy in rig.links.values { proxy.conditions = .init(resetShare: 1, resetWithinMilliseconds: 300) }
            rig.isolate(1, true)
            rig.isolate(1, false)
            try await ClusterRig.waitUntil("twenty resets") { rig.links.values.map(\.resets).reduce(0, +) >= 20 }
            try await ClusterRig.trafficFlows(stream, count: 60)
            for proxy in rig.links.values { proxy.conditions = .perfect }
            rig.isolate(1, true)
            rig.isolate(1, false)
            try await Self.allCaughtUp(rig)
            try await ClusterRig.trafficFlows(stream)
            await Self.expectClean(rig, stream)
            for node in LocalCluster.nodes {
                for reason in ["tampered", "replayed", "malformed", "frame_too_large"] {
                    #expect(await Self.refusals(rig, node, reason) == 0, "node \(node) refused a cut frame as \(reason)")
                }
            }
            let established = await Self.counter(rig, 1, "pdrelay_peer_connections_total", "event=\"established\"")
            #expect(established >= 10, "node 1 established \(established) connections")
            print("resets: \(rig.links.values.map(\.resets).reduce(0, +)), node 1 connections \(established)")
        }
    }

    /// Every link of the leader stops carrying bytes, and no close crosses them: to each node,
    /// its connections with the leader are half-open. Every one of them must find out by the
    /// silence (none is told), the others elect without the leader, and take it back once the
    /// links carry bytes again.
    @Test func halfOpenConnectionsAreNoticedAndRedialled() async throws {
        try await ClusterRig.run(withLinkProxies: true) { rig in
            let leader = try await rig.leader()
            let others = LocalCluster.nodes.filter { $0 != leader }
            let stream = EventStream(url: rig.cluster.loadBalancerURL, clients: 2)
            try await ClusterRig.trafficFlows(stream)
            rig.stall(leader, .bothWays)
            for node in LocalCluster.nodes {
                try await ClusterRig.waitUntil("node \(node) closes its half-open streams") {
                    await Self.refusals(rig, node, "silent") > 0
                }
            }
            _ = try await rig.leader(otherThan: leader)
            try await ClusterRig.trafficFlows(stream)
            rig.stall(leader, .none)
            try await Self.allCaughtUp(rig)
            try await ClusterRig.trafficFlows(stream)
            await Self.expectClean(rig, stream)
            #expect(rig.cluster.log(others[0]).contains("nothing received from node \(leader)"))
        }
    }

    /// Node 1's writes on its streams stop being read (as if its peers stopped reading): its
    /// writer backs up, the connections are closed for it, and the other two carry on.
    @Test func aPeerThatStopsReadingIsCutOffAndTakenBack() async throws {
        try await ClusterRig.run(withLinkProxies: true) { rig in
            let stream = EventStream(url: rig.cluster.loadBalancerURL, clients: 4)
            try await ClusterRig.trafficFlows(stream)
            rig.stall(1, .fromClient)
            for node in [2, 3] {
                try await ClusterRig.waitUntil("node \(node) closes node 1's unread stream") {
                    await Self.refusals(rig, node, "silent") > 0
                }
            }
            try await ClusterRig.trafficFlows(stream)
            rig.stall(1, .none)
            try await Self.allCaughtUp(rig)
            try await ClusterRig.trafficFlows(stream)
            await Self.expectClean(rig, stream)
        }
    }
}
