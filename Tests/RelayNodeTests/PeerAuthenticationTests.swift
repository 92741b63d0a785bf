import AsyncHTTPClient
import ClusterCore
import Crypto
import Foundation
import NIOCore
import RelayCore
import RelayReplication
import RelayTestSupport
import Testing

@testable import RelayNode

/// The peer listener refuses anything not signed with the cluster secret, before it looks at
/// the body: a forged vote request must not move the node's term.
@Suite(RelayLoad.node) struct PeerAuthenticationTests {
    static let secret = "0123456789abcdef0123456789abcdef-test"

    func post(_ port: Int, node: String? = "2", secret: String = secret, timestampOffset: Int64 = 0) async throws -> Int {
        let request = PeerTestSupport.signedRequest(port: port, node: node, secret: secret, timestampOffset: timestampOffset)
        return Int(try await HTTPClient.shared.execute(request, timeout: .seconds(5)).status.code)
    }

    /// Runs a lone cluster member with its peer listener; `body` gets the peer port and a way to
    /// read the node's term, which a forged vote request would move.
    func withPeerListener(_ body: (_ peerPort: Int, _ term: () async throws -> Int?) async throws -> Void) async throws {
        let peerPort = PeerTestSupport.peerPort()
        try await TestNode.run(configure: { PeerTestSupport.loneMember(&$0, peerPort: peerPort, secret: Self.secret) }) {
            (node: TestNode) async throws in
            try await body(peerPort) { try await node.client.get("/v1/cluster").json?["term"] as? Int }
        }
    }

    @Test func onlyRequestsSignedWithTheClusterSecretChangeAnything() async throws {
        try await withPeerListener { (peerPort: Int, term: () async throws -> Int?) async throws in
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

    /// A rotation: a node given `cluster_secret_next` accepts requests signed with either secret,
    /// and still signs with `cluster_secret`; one without it refuses the new secret.
    @Test func duringARotationBothSecretsAreAcceptedAndTheCurrentOneSigns() async throws {
        let next = "fedcba9876543210fedcba9876543210-next"
        let peerPort = PeerTestSupport.peerPort()
        try await TestNode.run(configure: {
            PeerTestSupport.loneMember(&$0, peerPort: peerPort, secret: Self.secret)
            $0.clusterSecretNext = next
        }) { (node: TestNode) async throws in
            #expect(try await post(peerPort, secret: next) == 204, "signed with cluster_secret_next")
            #expect(try await post(peerPort, secret: Self.secret) == 204, "signed with cluster_secret")
            #expect(try await post(peerPort, secret: "another-secret-another-secret-0000") == 401)
        }
        let rotated = PeerAuthenticator(secrets: [Self.secret, next], members: [1, 2])
        let signature = rotated.signature(method: "POST", path: "/p", node: 2, timestamp: 7, body: [1])
        let oldOnly = PeerAuthenticator(secrets: [Self.secret], members: [1, 2])
        #expect(
            (try? oldOnly.verify(method: "POST", path: "/p", node: "2", timestamp: "7", signature: signature, body: [1], nowMilliseconds: 7)
                .get())?
                .sender == 2, "a node mid-rotation still signs with cluster_secret")
        let newOnly = PeerAuthenticator(secrets: [next], members: [1, 2])
        #expect(
            (try? newOnly.verify(method: "POST", path: "/p", node: "2", timestamp: "7", signature: signature, body: [1], nowMilliseconds: 7)
                .get())
                == nil)
    }

    /// A request signed by the documented scheme, written out here rather than taken from
    /// `PeerAuthenticator`: HMAC-SHA256 under SHA-256(cluster_secret), over
    /// "METHOD path\nnode\ntimestamp\n" and then the body, in lowercase hex.
    struct Signed {
        var method = "POST"
        var path = PeerWire.messagesPath
        var node = "2"
        var timestamp = Int64(Date().timeIntervalSince1970 * 1_000)
        var body = PeerTestSupport.voteRequest

        var signature: String {
            let key = SymmetricKey(data: SHA256.hash(data: Data(PeerAuthenticationTests.secret.utf8)))
            let message = Data("\(method) \(path)\n\(node)\n\(timestamp)\n".utf8) + Data(body)
            return HMAC<SHA256>.authenticationCode(for: message, using: key).map { String(format: "%02x", $0) }.joined()
        }
    }

    /// Sends what was signed, with `tamper` applied to the request after signing.
    func send(_ signed: Signed, port: Int, tamper: (inout Signed) -> Void = { _ in }, signature: String? = nil) async throws -> Int {
        let signature = signature ?? signed.signature
        var sent = signed
        tamper(&sent)
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(sent.path)")
        request.method = .POST
        request.headers.add(name: "X-PDRelay-Node", value: sent.node)
        request.headers.add(name: "X-PDRelay-Timestamp", value: String(sent.timestamp))
        request.headers.add(name: "X-PDRelay-Signature", value: signature)
        request.body = .bytes(ByteBuffer(bytes: sent.body))
        return Int(try await HTTPClient.shared.execute(request, timeout: .seconds(5)).status.code)
    }

    @Test func aSignedRequestChangedInAnyPartIsRefused() async throws {
        try await withPeerListener { (peerPort: Int, term: () async throws -> Int?) async throws in
            let signed = Signed()
            let laterVote = MessageCodec.encode([
                Message<RelayStateMachine>(from: 2, to: 1, term: 9, body: .voteRequest(lastLogIndex: 9, lastLogTerm: 4))
            ])
            #expect(try await send(signed, port: peerPort, tamper: { $0.body = laterVote }) == 401, "body")
            #expect(try await send(signed, port: peerPort, tamper: { $0.body += [0] }) == 401, "a byte appended")
            #expect(try await send(signed, port: peerPort, tamper: { $0.node = "3" }) == 401, "sender")
            #expect(try await send(signed, port: peerPort, tamper: { $0.timestamp += 1 }) == 401, "timestamp")
            var forward = Signed()
            forward.path = PeerWire.forwardPath
            #expect(try await send(forward, port: peerPort, tamper: { $0.path = PeerWire.messagesPath }) == 401, "path")
            var put = Signed()
            put.method = "PUT"
            #expect(try await send(put, port: peerPort) == 401, "method")
            #expect(try await send(signed, port: peerPort, signature: String(signed.signature.dropLast(2))) == 401, "short")
            #expect(try await send(signed, port: peerPort, signature: signed.signature.uppercased() + "zz") == 401, "not hex")
            #expect(try await term() == 0, "a refused request moved the term")

            // The same oracle, untampered, gets through: the refusals above were the tampering's.
            #expect(try await send(signed, port: peerPort) == 204)
            #expect(try await term() == 5)
        }
    }
}
