import AsyncHTTPClient
import ClusterCore
import Foundation
import NIOCore
import RelayCore
import RelayTestSupport
import Testing

@testable import RelayNode

/// The peer listener refuses anything not signed with the cluster secret, before it looks at
/// the body: a forged vote request must not move the node's term.
@Suite struct PeerAuthenticationTests {
    static let secret = "0123456789abcdef0123456789abcdef-test"

    func post(_ port: Int, node: String? = "2", secret: String = secret, timestampOffset: Int64 = 0) async throws -> Int {
        let request = PeerTestSupport.signedRequest(port: port, node: node, secret: secret, timestampOffset: timestampOffset)
        return Int(try await HTTPClient.shared.execute(request, timeout: .seconds(5)).status.code)
    }

    @Test func onlyRequestsSignedWithTheClusterSecretChangeAnything() async throws {
        let peerPort = PeerTestSupport.peerPort()
        try await TestNode.run(configure: { PeerTestSupport.loneMember(&$0, peerPort: peerPort, secret: Self.secret) }) {
            (node: TestNode) async throws in
            func term() async throws -> Int? { try await node.client.get("/v1/cluster").json?["term"] as? Int }

            #expect(try await post(peerPort, node: nil) == 401)
            #expect(try await post(peerPort, secret: "another-secret-another-secret-0000") == 401)
            #expect(try await post(peerPort, node: "7") == 401)
            #expect(try await post(peerPort, timestampOffset: -120_000) == 401)
            #expect(try await post(peerPort, node: "3") == 403, "signed by node 3, but in node 2's name")
            #expect(try await term() == 0)

            #expect(try await post(peerPort) == 204)
            #expect(try await term() == 5)
        }
    }
}
