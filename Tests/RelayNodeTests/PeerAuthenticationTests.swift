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

    func post(_ port: Int, _ body: [UInt8], node: String? = "2", secret: String = secret, timestampOffset: Int64 = 0) async throws -> Int {
        let timestamp = Int64(Date().timeIntervalSince1970 * 1_000) + timestampOffset
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(PeerWire.messagesPath)")
        request.method = .POST
        if let node {
            request.headers.add(name: PeerAuthenticator.nodeHeader, value: node)
            request.headers.add(name: PeerAuthenticator.timestampHeader, value: String(timestamp))
            let signer = PeerAuthenticator(secret: secret, members: [1, 2, 3])
            request.headers.add(
                name: PeerAuthenticator.signatureHeader,
                value: signer.signature(method: "POST", path: PeerWire.messagesPath, node: Int(node) ?? 0, timestamp: timestamp, body: body)
            )
        }
        request.body = .bytes(ByteBuffer(bytes: body))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(5))
        return Int(response.status.code)
    }

    @Test func onlyRequestsSignedWithTheClusterSecretChangeAnything() async throws {
        let peerPort = 10_000 + Int.random(in: 0..<10_000)  // below the ephemeral range
        try await TestNode.run(configure: { configuration in
            configuration.nodeID = 1
            // The other two nodes do not exist: this node can never win an election, so its term
            // moves only if a vote request gets through.
            configuration.peers = "1=http://127.0.0.1:\(peerPort),2=http://127.0.0.1:9,3=http://127.0.0.1:9"
            configuration.clusterSecret = Self.secret
            configuration.electionTimeoutMilliseconds = 60_000
            configuration.heartbeatIntervalMilliseconds = 1_000
        }) { (node: TestNode) async throws in
            let vote = MessageCodec.encode([
                Message<RelayStateMachine>(from: 2, to: 1, term: 5, body: .voteRequest(lastLogIndex: 9, lastLogTerm: 4))
            ])
            func term() async throws -> Int? { try await node.client.get("/v1/cluster").json?["term"] as? Int }

            #expect(try await post(peerPort, vote, node: nil) == 401)
            #expect(try await post(peerPort, vote, secret: "another-secret-another-secret-0000") == 401)
            #expect(try await post(peerPort, vote, node: "7") == 401)
            #expect(try await post(peerPort, vote, timestampOffset: -120_000) == 401)
            #expect(try await post(peerPort, vote, node: "3") == 403, "signed by node 3, but in node 2's name")
            #expect(try await term() == 0)

            #expect(try await post(peerPort, vote) == 204)
            #expect(try await term() == 5)
        }
    }
}
