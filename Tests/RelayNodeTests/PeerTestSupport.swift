import AsyncHTTPClient
import ClusterCore
import Foundation
import NIOCore
import RelayCore
import RelayReplication

@testable import RelayNode

/// A node that is alone in its cluster, and signed requests to its peer listener: what the peer
/// tests probe it with.
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

    /// Node 2 asks for node 1's vote in term 5.
    static let voteRequest = MessageCodec.encode([
        Message<RelayStateMachine>(from: 2, to: 1, term: 5, body: .voteRequest(lastLogIndex: 9, lastLogTerm: 4))
    ])

    /// `body` POSTed to the messages endpoint, signed as `node` with `secret` (unsigned when
    /// `node` is nil), its timestamp moved by `timestampOffset` milliseconds.
    static func signedRequest(
        scheme: String = "http", port: Int, body: [UInt8] = voteRequest, node: String? = "2", secret: String,
        timestampOffset: Int64 = 0
    ) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: "\(scheme)://127.0.0.1:\(port)\(PeerWire.messagesPath)")
        request.method = .POST
        if let node {
            let timestamp = Int64(Date().timeIntervalSince1970 * 1_000) + timestampOffset
            request.headers.add(name: PeerAuthenticator.nodeHeader, value: node)
            request.headers.add(name: PeerAuthenticator.timestampHeader, value: String(timestamp))
            request.headers.add(
                name: PeerAuthenticator.signatureHeader,
                value: PeerAuthenticator(secrets: [secret], members: [1, 2, 3]).signature(
                    method: "POST", path: PeerWire.messagesPath, node: Int(node) ?? 0, timestamp: timestamp, body: body))
        }
        request.body = .bytes(ByteBuffer(bytes: body))
        return request
    }
}
