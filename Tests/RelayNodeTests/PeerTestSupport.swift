import AsyncHTTPClient
import ClusterCore
import Crypto
import Foundation

@testable import RelayNode

/// A node that is alone in its cluster: what the peer tests probe.
enum PeerTestSupport {
    /// A free port below Linux's ephemeral range, for a peer listener.
    static func peerPort() -> Int { 10_000 + Int.random(in: 0..<10_000) }

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
