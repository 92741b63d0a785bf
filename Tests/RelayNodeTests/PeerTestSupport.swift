import AsyncHTTPClient
import ClusterCore
import ClusterHarness
import Crypto
import Foundation
import NIOConcurrencyHelpers

@testable import RelayNode

/// A node that is alone in its cluster: what the peer tests probe.
enum PeerTestSupport {
    /// A free port below Linux's ephemeral range, for a peer listener, never one handed out
    /// before in this process (some callers take the next port too): drawn at random, tests
    /// running at once chose the same one now and then.
    static func peerPort() -> Int {
        for _ in 0..<1_000 {
            let port = nextPort.withLockedValue { port in
                defer { port = port + 2 < 20_000 ? port + 2 : 10_000 }
                return port
            }
            if LoopbackPort.isFree(port) && LoopbackPort.isFree(port + 1) { return port }
        }
        preconditionFailure("no two free ports in a thousand tries between 10,000 and 20,000")
    }

    private static let nextPort = NIOLockedValueBox(10_000 + 2 * Int.random(in: 0..<5_000))

    /// Node 1 of a three-node cluster whose other two members do not exist, so it can never win
    /// an election: its term moves only if a vote request gets through.
    static func loneMember(_ configuration: inout RelayConfiguration, peerPort: Int, scheme: String = "http", secret: String) {
        configuration.nodeID = 1
        configuration.peers = "1=\(scheme)://127.0.0.1:\(peerPort),2=\(scheme)://127.0.0.1:9,3=\(scheme)://127.0.0.1:9"
        configuration.clusterSecret = secret
        configuration.electionTimeoutMilliseconds = 60_000
        configuration.heartbeatIntervalMilliseconds = 1_000
    }
}

extension PeerTestSupport {
    /// A POST to the peer listener's status route, signed by the documented scheme, written out
    /// here rather than taken from `PeerAuthenticator`: HMAC-SHA256 under SHA-256(cluster_secret)
    /// over "METHOD path\nnode\ntimestamp\n" and the body, in lowercase hex. `sentTo` replaces
    /// the path after signing.
    static func signedStatusRequest(
        scheme: String = "http", port: Int, node: String = "2", secret: String, timestampOffset: Int64 = 0, sentTo: String? = nil
    ) -> HTTPClientRequest {
        let path = PeerWire.statusPath
        let timestamp = Int64(Date().timeIntervalSince1970 * 1_000) + timestampOffset
        let key = SymmetricKey(data: SHA256.hash(data: Data(secret.utf8)))
        let signature = HMAC<SHA256>.authenticationCode(for: Data("POST \(path)\n\(node)\n\(timestamp)\n".utf8), using: key)
            .map { String(format: "%02x", $0) }.joined()
        var request = HTTPClientRequest(url: "\(scheme)://127.0.0.1:\(port)\(sentTo ?? path)")
        request.method = .POST
        request.headers.add(name: "X-PDRelay-Node", value: node)
        request.headers.add(name: "X-PDRelay-Timestamp", value: String(timestamp))
        request.headers.add(name: "X-PDRelay-Signature", value: signature)
        return request
    }
}
