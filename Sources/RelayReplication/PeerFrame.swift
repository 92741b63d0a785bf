/// The peer stream's frames (docs/protocol.md, "The peer stream"). A connection opens with
/// `preface`, then carries frames: a 4-byte big-endian length, then that many bytes of body. A
/// body is a kind byte and its payload. Handshake frames (`hello` to `refused`) carry no MAC;
/// every later frame is sealed by `PeerSession`: a sequence number, the data, and a MAC over
/// both under the connection's own key.
public enum PeerFrame {
    /// What a dialer sends first: the listener tells a peer stream from an HTTP request by it
    /// (no HTTP method starts with "PDRS"), and the version byte lets a later format refuse
    /// this one by name.
    public static let preface: [UInt8] = Array("PDRS".utf8) + [1]
    public static let lengthBytes = 4
    /// The largest body: a message batch (`MessageCodec.maxBatchBytes`, 64 MiB; forwarded
    /// commands are batched near 4 MB) plus the seal. A longer length is refused before a byte of
    /// it is buffered.
    public static let maxBodyBytes = 64 * 1_024 * 1_024 + 64
    /// HMAC-SHA256 truncated to 128 bits, as in TLS 1.2's and IPsec's MACs: forging one takes
    /// 2^128 tries, and each wrong one ends the connection.
    public static let macBytes = 16
    /// The sequence number, big-endian.
    public static let sequenceBytes = 8

    public enum Kind: UInt8, Sendable, CaseIterable {
        // The handshake, in order; `refused` may end it at any step.
        case hello = 1
        case challenge = 2
        case proof = 3
        case welcome = 4
        case refused = 5
        // Sealed frames.
        /// A batch of Raft messages (`MessageCodec`).
        case messages = 16
        /// Client commands a follower hands to its leader: a request number, then `PeerWire`'s
        /// commands.
        case forward = 17
        /// The leader's outcomes for a `forward`: its request number, then `PeerWire`'s outcomes.
        case outcomes = 18
        /// The sender's wall clock, so that each side keeps measuring the other's skew; also
        /// what an idle link carries, so that silence means a dead or frozen peer.
        case clock = 19

        public var isSealed: Bool { rawValue >= Kind.messages.rawValue }
    }

    /// A frame's bytes on the wire: its length, its kind, its payload parts.
    public static func encode(kind: Kind, parts: [[UInt8]]) -> [UInt8] {
        let bodyBytes = 1 + parts.reduce(0) { $0 + $1.count }
        precondition(bodyBytes <= maxBodyBytes, "a frame of \(bodyBytes) bytes is beyond the stream's limit")
        var frame: [UInt8] = []
        frame.reserveCapacity(lengthBytes + bodyBytes)
        appendBigEndian(UInt64(bodyBytes), bytes: lengthBytes, to: &frame)
        frame.append(kind.rawValue)
        for part in parts { frame.append(contentsOf: part) }
        return frame
    }

    /// A wall clock's milliseconds (a `clock` frame's payload; also in `hello` and `challenge`).
    public static func clock(_ milliseconds: Int64) -> [UInt8] {
        var bytes: [UInt8] = []
        appendBigEndian(UInt64(bitPattern: milliseconds), bytes: 8, to: &bytes)
        return bytes
    }

    public static func readClock(_ bytes: ArraySlice<UInt8>) throws(PeerStreamRefusal) -> Int64 {
        guard bytes.count == 8 else { throw PeerStreamRefusal(.malformed, "a clock of \(bytes.count) bytes") }
        return Int64(bitPattern: readBigEndian(bytes))
    }

    static func appendBigEndian(_ value: UInt64, bytes: Int, to output: inout [UInt8]) {
        for shift in stride(from: (bytes - 1) * 8, through: 0, by: -8) { output.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
    }

    static func readBigEndian(_ bytes: some Collection<UInt8>) -> UInt64 {
        bytes.reduce(0) { ($0 << 8) | UInt64($1) }
    }
}

/// Why a stream was ended: every refusal closes the connection, is counted by its `label`, and
/// changes nothing on the node.
public struct PeerStreamRefusal: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Reason: String, Sendable, CaseIterable {
        /// Not a pdrelay peer stream, or another version of it.
        case badPreface = "bad_preface"
        case frameTooLarge = "frame_too_large"
        /// A frame that does not parse, or comes out of turn.
        case malformed
        /// A MAC that does not verify: the frame was changed, or sealed under another key (such
        /// as a frame recorded on an earlier connection).
        case tampered
        /// A sequence number already seen (or skipped): a replayed or dropped frame.
        case replayed
        /// The handshake's proof does not verify: another `cluster_secret`.
        case badProof = "bad_proof"
        /// A node id that is not a member, or not the one dialed.
        case unknownPeer = "unknown_peer"
        /// The two wall clocks disagree by more than the peers tolerate.
        case clockSkew = "clock_skew"
        /// The other side refused (its `refused` frame says why).
        case refusedByPeer = "refused_by_peer"
    }

    public let reason: Reason
    public let detail: String
    /// For `clockSkew`: the other clock minus this one.
    public let skewMilliseconds: Int64?

    public init(_ reason: Reason, _ detail: String, skewMilliseconds: Int64? = nil) {
        self.reason = reason
        self.detail = detail
        self.skewMilliseconds = skewMilliseconds
    }

    public var label: String { reason.rawValue }
    public var description: String { detail }
}
