import Foundation
import RelayTestSupport
import Testing

@testable import RelayNode

/// A node of a cluster whose peers are all down can elect no one: a client request waits the
/// bounded `leader_wait_milliseconds`, then gets 503 with Retry-After, and `/readyz` says why.
@Suite(RelayLoad.node) struct NoLeaderTests {
    @Test func withoutAMajorityARequestWaitsBoundedThenGets503AndTheNodeIsNotReady() async throws {
        let peerPort = PeerTestSupport.peerPort()
        try await TestNode.run(configure: { configuration in
            PeerTestSupport.loneMember(&configuration, peerPort: peerPort, secret: "0123456789abcdef0123456789abcdef-test")
            configuration.leaderWaitMilliseconds = 400
        }) { (node: TestNode) async throws in
            let started = ContinuousClock.now
            let response = try await node.send(TestSupport.alert(dedupKey: "nobody-leads"))
            let waited = ContinuousClock.now - started
            #expect(response.status == 503)
            #expect(response.retryAfter == "1")
            #expect(response.text.contains("no cluster leader is known"))
            #expect(waited >= .milliseconds(400) && waited < .seconds(5), "waited \(waited)")

            let ready = try await node.client.get("/readyz")
            #expect(ready.status == 503)
            #expect(ready.text.contains("no leader known"))
            #expect(ready.text.contains("not in contact with a majority"))
            let view = try #require(try await node.client.get("/v1/cluster").json)
            #expect(view["leader_id"] is NSNull)
            #expect(view["ready"] as? Bool == false)
        }
    }
}
