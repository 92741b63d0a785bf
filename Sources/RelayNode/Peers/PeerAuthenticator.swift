import ClusterCore
import Crypto
import Foundation

/// Every peer request carries `X-PDRelay-Node`, `X-PDRelay-Timestamp` (wall-clock ms) and
/// `X-PDRelay-Signature`: HMAC-SHA256 under `cluster_secret` over the method, path, node,
/// timestamp and body. A request without a valid one gets 401 and changes nothing.
///
/// The timestamp bounds replays to a window; a replay inside it is harmless to the protocol
/// (Raft tolerates duplicated messages) and to events (a forwarded event replayed is a
/// byte-identical retry, which dedup answers without queueing).
struct PeerAuthenticator: Sendable {
    static let nodeHeader = "X-PDRelay-Node"
    static let timestampHeader = "X-PDRelay-Timestamp"
    static let signatureHeader = "X-PDRelay-Signature"
    /// On every peer answer, refusals included: the answering node's wall clock, so the sender
    /// measures the skew even when its own timestamps are refused.
    static let timeHeader = "X-PDRelay-Time"
    static let maxClockSkewMilliseconds: Int64 = 60_000

    /// The first signs; any verifies. During a rotation `cluster_secret_next` is the second
    /// (docs/operations.md, "Rotating secrets"): every node accepts both before any signs with the new one.
    private let keys: [[UInt8]]
    private var key: SymmetricKey { SymmetricKey(data: keys[0]) }
    private let members: Set<NodeID>

    init(secrets: [String], members: Set<NodeID>) {
        keys = (secrets.isEmpty ? [""] : secrets).map { Array(SHA256.hash(data: Data($0.utf8))) }
        self.members = members
    }

    func signature(method: String, path: String, node: NodeID, timestamp: Int64, body: some Collection<UInt8>) -> String {
        var mac = HMAC<SHA256>(key: key)
        mac.update(data: Data("\(method) \(path)\n\(node)\n\(timestamp)\n".utf8))
        mac.update(data: Data(body))
        return Data(mac.finalize()).map { String(format: "%02x", $0) }.joined()
    }

    /// The authenticated sender and its clock's timestamp, or why the request is refused. The
    /// signature is checked before the timestamp, so a skew reported is the sender's own.
    func verify(
        method: String, path: String, node: String?, timestamp: String?, signature: String?, body: [UInt8], nowMilliseconds: Int64
    ) -> Result<(sender: NodeID, sentAtMilliseconds: Int64), PeerAuthenticationFailure> {
        guard let node, let id = NodeID(node), members.contains(id) else {
            return .failure(.init("missing or unknown \(Self.nodeHeader)"))
        }
        guard let timestamp, let sentAt = Int64(timestamp) else { return .failure(.init("missing \(Self.timestampHeader)")) }
        let signed = Data("\(method) \(path)\n\(id)\n\(sentAt)\n".utf8) + Data(body)
        guard let signature, let presented = Self.bytes(hex: signature),
            keys.contains(where: {
                HMAC<SHA256>.isValidAuthenticationCode(presented, authenticating: signed, using: SymmetricKey(data: $0))
            })
        else {
            return .failure(.init("bad \(Self.signatureHeader): is cluster_secret the same on every node?"))
        }
        let skew = sentAt - nowMilliseconds
        guard abs(skew) <= Self.maxClockSkewMilliseconds else {
            return .failure(
                .init(
                    ClockSkewWatch.describe(.peer(id), skewMilliseconds: skew, bound: Self.maxClockSkewMilliseconds),
                    clockSkewMilliseconds: skew))
        }
        return .success((id, sentAt))
    }

    private static func bytes(hex: String) -> [UInt8]? {
        let digits = Array(hex.utf8)
        guard digits.count == 64 else { return nil }
        var bytes: [UInt8] = []
        for index in stride(from: 0, to: digits.count, by: 2) {
            guard let byte = UInt8(String(decoding: digits[index..<index + 2], as: UTF8.self), radix: 16) else { return nil }
            bytes.append(byte)
        }
        return bytes
    }
}

struct PeerAuthenticationFailure: Error, CustomStringConvertible {
    let description: String
    /// Set when the request was signed correctly but its timestamp is too far from this clock.
    let clockSkewMilliseconds: Int64?
    init(_ description: String, clockSkewMilliseconds: Int64? = nil) {
        self.description = description
        self.clockSkewMilliseconds = clockSkewMilliseconds
    }
}
