import ClusterHarness
import Foundation
import RelayClient
import RelayTestSupport
import Testing

/// A wiped follower rejoins through a snapshot many chunks large, and a reset of the link in the
/// middle of the transfer resumes it where it stopped. Before chunking, a snapshot travelled as
/// one request capped at 1 GiB: a larger queue left the follower outside the cluster for good,
/// and the leader logged only "peer unreachable".
@Suite(.serialized, RelayLoad.cluster) struct SnapshotCatchUpTests {
    static let chunkBytes = 4_096
    static let events = 600

    @Test func aWipedFollowerRejoinsThroughAChunkedSnapshotThatSurvivesAReset() async throws {
        try await ClusterRig.run(
            withLinkProxies: true,
            // Every event is dead-lettered at its first answer, so the queue holds still (no
            // retries, no new snapshots) while the follower catches up.
            extraSettings: ["snapshot_chunk_bytes: \(Self.chunkBytes)", "retry_max_attempts: 1"], upstreamReply: .status(400)
        ) { rig in
            let client = RelayClient(baseURL: rig.cluster.loadBalancerURL, timeoutMilliseconds: 10_000)
            defer { Task { try? await client.shutdown() } }
            let padding = String(repeating: "x", count: 6_000)
            for number in 0..<Self.events {
                let body = Array(
                    #"{"routing_key":"0123456789abcdef0123456789abcdef","event_action":"trigger","dedup_key":"catch-up-\#(number)","payload":{"summary":"catch-up \#(number)","source":"test","severity":"error","custom_details":{"padding":"\#(padding)"}}}"#
                        .utf8)
                let response = try await client.postRetrying("/v2/enqueue", json: body)
                #expect(response.status == 202, "event \(number): \(response.status) \(String(decoding: response.body, as: UTF8.self))")
            }
            let leader = try await rig.leader()
            let follower = LocalCluster.nodes.first { $0 != leader }!
            await rig.cluster.kill9(follower)
            try rig.cluster.wipe(follower)
            try await rig.cluster.start(follower)
            // Break the leader's connections to the follower once the transfer is under way.
            try await ClusterRig.waitUntil("the snapshot transfer under way", timeout: .seconds(60)) {
                guard let transfer = (await rig.view(follower))?["incoming_snapshot"] as? [String: Any],
                    let done = transfer["bytes_done"] as? Int, let total = transfer["bytes_total"] as? Int
                else { return false }
                return done > 0 && done < total / 2
            }
            let link = try #require(rig.links[ClusterRig.Link(from: leader, to: follower)])
            link.blocked = true
            // Unblocked once the leader has seen the transfer break, not after a fixed time.
            try await ClusterRig.waitUntil("the leader sees the transfer interrupted", timeout: .seconds(30)) {
                let peers = (await rig.view(leader))?["peers"] as? [[String: Any]]
                let transfer = peers?.first { $0["id"] as? Int == follower }?["snapshot_transfer"] as? [String: Any]
                return (transfer?["interruptions"] as? Int ?? 0) >= 1
            }
            link.blocked = false
            try await rig.waitUntilReady([follower], timeout: .seconds(120))

            let view = try #require(await rig.view(follower))
            #expect(view["voting"] as? Bool == true)
            let incoming = try #require(view["incoming_snapshot"] as? [String: Any])
            let total = try #require(incoming["bytes_total"] as? Int)
            #expect(incoming["finished"] as? Bool == true)
            #expect(total > 100 * Self.chunkBytes, "the snapshot was only \(total) bytes")
            let leaderView = try #require(await rig.view(leader))
            let peers = try #require(leaderView["peers"] as? [[String: Any]])
            let transfer = try #require(peers.first { $0["id"] as? Int == follower }?["snapshot_transfer"] as? [String: Any])
            #expect(transfer["finished"] as? Bool == true)
            #expect((transfer["interruptions"] as? Int ?? 0) >= 1, "the reset did not interrupt the transfer: \(transfer)")
            // Resumed, not restarted: little more than the snapshot itself crossed the link.
            let transmitted = try #require(transfer["transmitted_bytes"] as? Int)
            #expect(transmitted < total + 20 * Self.chunkBytes, "\(transmitted) bytes sent for a snapshot of \(total)")
            let queue = try await rig.nodes[follower]!.get("/v1/cluster")
            #expect(queue.status == 200)
            let log = rig.cluster.log(follower)
            #expect(log.components(separatedBy: "receiving a snapshot from the leader").count - 1 == 1)
            #expect(log.contains("caught up after an empty-disk start"))
            print("chunked catch-up: \(total) bytes in \(Self.chunkBytes)-byte chunks, \(transmitted) sent, \(transfer)")
        }
    }
}
