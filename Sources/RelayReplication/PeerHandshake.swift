import ClusterCore
import Crypto

/// The peer stream's handshake, as a state machine: frames in, frames out, and in the end a
/// `PeerSession` or a refusal. The dialer proves it holds `cluster_secret` by a MAC over both
/// sides' fresh nonces, the listener proves it back, and the session key is derived from the
/// same transcript, so a recording of one connection opens no other. The secret never travels.
///
///     dialer                                   listener
///     preface, hello(ids, nonce, clock)   →
///                                         ←    challenge(id, nonce, clock)
///     proof(MAC(k, 1 ‖ transcript))       →
///                                         ←    welcome(MAC(k, 2 ‖ transcript))
///     session key = MAC(k, 3 ‖ transcript), on both sides
///
/// Each side also reads the other's wall clock from its first frame: the skew is measured at
/// every connection, and beyond `maxClockSkewMilliseconds` the two refuse each other, as they
/// did when every request carried a timestamp.
public struct PeerHandshake: Sendable {
    public enum Role: Sendable, Equatable {
        /// This node dialed `peer`.
        case dialer(peer: NodeID)
        /// This node accepted the connection.
        case listener
    }

    public struct Settings: Sendable {
        public let selfID: NodeID
        public let members: Set<NodeID>
        /// The first proves; any verifies (a rotation: `cluster_secret_next`).
        let keys: [[UInt8]]
        public let maxClockSkewMilliseconds: Int64

        public init(selfID: NodeID, members: Set<NodeID>, secrets: [String], maxClockSkewMilliseconds: Int64) {
            precondition(maxClockSkewMilliseconds > 0, "a skew bound is positive")
            self.selfID = selfID
            self.members = members
            keys = Self.keys(secrets: secrets)
            self.maxClockSkewMilliseconds = maxClockSkewMilliseconds
        }

        /// A secret of any length becomes a 256-bit key.
        public static func keys(secrets: [String]) -> [[UInt8]] {
            (secrets.isEmpty ? [""] : secrets).map { Array(SHA256.hash(data: Array($0.utf8))) }
        }
    }

    public enum Step: Sendable {
        /// Send these bytes and wait for the next frame.
        case send([UInt8])
        /// The connection is authenticated; send `send` (the listener's welcome) first.
        case established(PeerSession, peer: NodeID, send: [UInt8]?)
        /// Send `send` (a `refused` frame, when there is a reason to tell), then close.
        case refused(PeerStreamRefusal, send: [UInt8]?)
    }

    public static let nonceBytes = 32
    static let maxRefusalBytes = 256
    private static let label = Array("pdrelay peer stream v1".utf8)

    private enum State: Sendable {
        case awaitingHello
        case awaitingChallenge
        case awaitingProof(dialer: NodeID, transcript: [UInt8])
        case awaitingWelcome(transcript: [UInt8])
        case finished
    }

    public let role: Role
    private let settings: Settings
    private let nonce: [UInt8]
    private let openedAtWallClockMilliseconds: Int64
    private var state: State
    /// The other side and its clock minus this one's, once its first frame was read.
    public private(set) var measuredSkew: (peer: NodeID, milliseconds: Int64)?

    /// `nonce`: `nonceBytes` fresh random bytes; `wallClockMilliseconds`: now, for the hello or
    /// challenge this side sends.
    public init(role: Role, settings: Settings, nonce: [UInt8], wallClockMilliseconds: Int64) {
        precondition(nonce.count == Self.nonceBytes, "a handshake nonce is \(Self.nonceBytes) bytes")
        if case .dialer(let peer) = role { precondition(peer != settings.selfID, "a node does not dial itself") }
        self.role = role
        self.settings = settings
        self.nonce = nonce
        openedAtWallClockMilliseconds = wallClockMilliseconds
        state = role == .listener ? .awaitingHello : .awaitingChallenge
    }

    /// The dialer's first bytes: the preface and its hello.
    public func opening() -> [UInt8] {
        guard case .dialer(let peer) = role else { preconditionFailure("only the dialer opens") }
        return PeerFrame.preface
            + PeerFrame.encode(
                kind: .hello,
                parts: [Self.id(settings.selfID), Self.id(peer), nonce, PeerFrame.clock(openedAtWallClockMilliseconds)])
    }

    public mutating func receive(_ body: ArraySlice<UInt8>, wallClockMilliseconds: Int64) -> Step {
        guard let first = body.first, let kind = PeerFrame.Kind(rawValue: first) else {
            return finish(.malformed, "a handshake frame of unknown kind \(body.first ?? 0)")
        }
        let payload = Array(body.dropFirst())
        if kind == .refused {
            state = .finished
            // Unauthenticated text bound for the log: printable ASCII only, so that it cannot
            // forge log lines.
            let reason = String(
                decoding: payload.prefix(Self.maxRefusalBytes).map { (0x20...0x7E).contains($0) ? $0 : 0x3F }, as: UTF8.self)
            return .refused(PeerStreamRefusal(.refusedByPeer, "the peer refused the connection: \(reason)"), send: nil)
        }
        switch (state, kind) {
        case (.awaitingHello, .hello): return hello(payload, now: wallClockMilliseconds)
        case (.awaitingChallenge, .challenge): return challenge(payload, now: wallClockMilliseconds)
        case (.awaitingProof(let dialer, let transcript), .proof): return proof(payload, dialer: dialer, transcript: transcript)
        case (.awaitingWelcome(let transcript), .welcome): return welcome(payload, transcript: transcript)
        default: return finish(.malformed, "a \(kind) frame out of turn in the handshake")
        }
    }

    private mutating func hello(_ payload: [UInt8], now: Int64) -> Step {
        guard payload.count == 8 + 8 + Self.nonceBytes + 8 else { return finish(.malformed, "a hello of \(payload.count) bytes") }
        let dialer = Self.readID(payload[0..<8])
        let dialed = Self.readID(payload[8..<16])
        guard let dialer, settings.members.contains(dialer), dialer != settings.selfID else {
            return finish(
                .unknownPeer, "a hello from node \(dialer.map(String.init) ?? "?"), which is not a peer of node \(settings.selfID)")
        }
        guard dialed == settings.selfID else {
            return finish(.unknownPeer, "node \(dialer) dialed node \(dialed.map(String.init) ?? "?"), but this is node \(settings.selfID)")
        }
        let dialerNonce = Array(payload[16..<16 + Self.nonceBytes])
        let challenge = PeerFrame.encode(kind: .challenge, parts: [Self.id(settings.selfID), nonce, PeerFrame.clock(now)])
        if let refusal = skewRefusal(
            peer: dialer, theirs: Int64(bitPattern: PeerFrame.readBigEndian(payload[(16 + Self.nonceBytes)...])), now: now)
        {
            // The challenge still goes first: it carries this clock, so the dialer names the
            // skew from its side too.
            state = .finished
            return .refused(refusal, send: challenge + Self.refusedFrame(refusal))
        }
        state = .awaitingProof(
            dialer: dialer,
            transcript: Self.transcript(dialer: dialer, listener: settings.selfID, dialerNonce: dialerNonce, listenerNonce: nonce))
        return .send(challenge)
    }

    private mutating func challenge(_ payload: [UInt8], now: Int64) -> Step {
        guard case .dialer(let peer) = role else { preconditionFailure("only a dialer awaits a challenge") }
        guard payload.count == 8 + Self.nonceBytes + 8 else { return finish(.malformed, "a challenge of \(payload.count) bytes") }
        guard Self.readID(payload[0..<8]) == peer else {
            return finish(.unknownPeer, "dialed node \(peer), but another node answered")
        }
        if let refusal = skewRefusal(
            peer: peer, theirs: Int64(bitPattern: PeerFrame.readBigEndian(payload[(8 + Self.nonceBytes)...])), now: now)
        {
            state = .finished
            return .refused(refusal, send: Self.refusedFrame(refusal))
        }
        let transcript = Self.transcript(
            dialer: settings.selfID, listener: peer, dialerNonce: nonce, listenerNonce: Array(payload[8..<8 + Self.nonceBytes]))
        state = .awaitingWelcome(transcript: transcript)
        return .send(PeerFrame.encode(kind: .proof, parts: [Self.mac(settings.keys[0], 1, transcript)]))
    }

    private mutating func proof(_ payload: [UInt8], dialer: NodeID, transcript: [UInt8]) -> Step {
        guard let key = settings.keys.first(where: { PeerSession.constantTimeEqual(Self.mac($0, 1, transcript), payload[...]) }) else {
            return finish(.badProof, "node \(dialer)'s proof does not verify: is cluster_secret the same on every node?")
        }
        state = .finished
        return .established(
            PeerSession(key: Self.mac(key, 3, transcript), isDialer: false), peer: dialer,
            send: PeerFrame.encode(kind: .welcome, parts: [Self.mac(key, 2, transcript)]))
    }

    private mutating func welcome(_ payload: [UInt8], transcript: [UInt8]) -> Step {
        guard case .dialer(let peer) = role else { preconditionFailure("only a dialer awaits a welcome") }
        let key = settings.keys[0]
        guard PeerSession.constantTimeEqual(Self.mac(key, 2, transcript), payload[...]) else {
            return finish(.badProof, "node \(peer)'s welcome does not verify: is cluster_secret the same on every node?")
        }
        state = .finished
        return .established(PeerSession(key: Self.mac(key, 3, transcript), isDialer: true), peer: peer, send: nil)
    }

    private mutating func skewRefusal(peer: NodeID, theirs: Int64, now: Int64) -> PeerStreamRefusal? {
        let skew = theirs &- now
        measuredSkew = (peer, skew)
        guard skew.magnitude > UInt64(settings.maxClockSkewMilliseconds) else { return nil }
        return PeerStreamRefusal(
            .clockSkew, "node \(peer)'s clock is \(skew) ms from this one's, beyond \(settings.maxClockSkewMilliseconds) ms",
            skewMilliseconds: skew)
    }

    /// Ends the handshake; the other side hears why, except when the reason is its own refusal.
    private mutating func finish(_ reason: PeerStreamRefusal.Reason, _ detail: String) -> Step {
        state = .finished
        let refusal = PeerStreamRefusal(reason, detail)
        return .refused(refusal, send: Self.refusedFrame(refusal))
    }

    private static func refusedFrame(_ refusal: PeerStreamRefusal) -> [UInt8] {
        PeerFrame.encode(kind: .refused, parts: [Array(Array(refusal.detail.utf8).prefix(maxRefusalBytes))])
    }

    private static func transcript(dialer: NodeID, listener: NodeID, dialerNonce: [UInt8], listenerNonce: [UInt8]) -> [UInt8] {
        label + id(dialer) + id(listener) + dialerNonce + listenerNonce
    }

    private static func mac(_ key: [UInt8], _ purpose: UInt8, _ transcript: [UInt8]) -> [UInt8] {
        var hmac = HMAC<SHA256>(key: SymmetricKey(data: key))
        hmac.update(data: [purpose])
        hmac.update(data: transcript)
        return Array(hmac.finalize())
    }

    private static func id(_ node: NodeID) -> [UInt8] {
        var bytes: [UInt8] = []
        PeerFrame.appendBigEndian(UInt64(bitPattern: Int64(node)), bytes: 8, to: &bytes)
        return bytes
    }

    private static func readID(_ bytes: ArraySlice<UInt8>) -> NodeID? {
        NodeID(exactly: Int64(bitPattern: PeerFrame.readBigEndian(bytes)))
    }

}
