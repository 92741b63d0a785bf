import Crypto

/// One authenticated connection's sealing: every frame after the handshake carries its sequence
/// number and a MAC under a key that only this connection has (`PeerHandshake` derives it from
/// both sides' fresh nonces). A tampered frame fails its MAC; a frame replayed on this
/// connection repeats a sequence number; a frame recorded on another connection was sealed under
/// another key. Each is refused and ends the connection.
public struct PeerSession: Sendable {
    /// 256 bits, kept as bytes: `SymmetricKey` is not `Sendable`.
    private let key: [UInt8]
    /// Which way a frame travels is part of what its MAC covers, so that a frame cannot be
    /// reflected back to its sender.
    private let sendDirection: UInt8
    private var nextSendSequence: UInt64 = 1
    private var nextReceiveSequence: UInt64 = 1

    init(key: [UInt8], isDialer: Bool) {
        self.key = key
        sendDirection = isDialer ? 1 : 2
    }

    /// The frame's bytes, ready for the wire.
    public mutating func seal(_ kind: PeerFrame.Kind, payload: [UInt8]) -> [UInt8] {
        precondition(kind.isSealed, "handshake frames are not sealed")
        let sequence = nextSendSequence
        nextSendSequence += 1
        var header: [UInt8] = []
        header.reserveCapacity(PeerFrame.sequenceBytes)
        PeerFrame.appendBigEndian(sequence, bytes: PeerFrame.sequenceBytes, to: &header)
        let mac = Self.mac(key: key, direction: sendDirection, kind: kind, sequenceBytes: header[...], payload: payload[...])
        return PeerFrame.encode(kind: kind, parts: [header, payload, mac])
    }

    /// A sealed frame's kind and data, once its MAC and sequence number check out.
    public mutating func open(_ body: ArraySlice<UInt8>) throws(PeerStreamRefusal) -> (kind: PeerFrame.Kind, payload: ArraySlice<UInt8>) {
        guard let first = body.first, let kind = PeerFrame.Kind(rawValue: first), kind.isSealed else {
            throw PeerStreamRefusal(.malformed, "a frame of unknown or handshake kind \(body.first ?? 0) after the handshake")
        }
        guard body.count >= 1 + PeerFrame.sequenceBytes + PeerFrame.macBytes else {
            throw PeerStreamRefusal(.malformed, "a sealed frame of \(body.count) bytes is too short for its seal")
        }
        let sequenceStart = body.startIndex + 1
        let payloadStart = sequenceStart + PeerFrame.sequenceBytes
        let macStart = body.endIndex - PeerFrame.macBytes
        let sequenceBytes = body[sequenceStart..<payloadStart]
        let payload = body[payloadStart..<macStart]
        let expected = Self.mac(
            key: key, direction: sendDirection == 1 ? 2 : 1, kind: kind, sequenceBytes: sequenceBytes, payload: payload)
        guard Self.constantTimeEqual(expected, body[macStart...]) else {
            throw PeerStreamRefusal(.tampered, "a \(kind) frame whose MAC does not verify")
        }
        let sequence = PeerFrame.readBigEndian(sequenceBytes)
        guard sequence == nextReceiveSequence else {
            throw PeerStreamRefusal(.replayed, "a \(kind) frame numbered \(sequence) where \(nextReceiveSequence) was due")
        }
        nextReceiveSequence += 1
        return (kind, payload)
    }

    private static func mac(
        key: [UInt8], direction: UInt8, kind: PeerFrame.Kind, sequenceBytes: ArraySlice<UInt8>, payload: ArraySlice<UInt8>
    ) -> [UInt8] {
        var hmac = HMAC<SHA256>(key: SymmetricKey(data: key))
        hmac.update(data: [direction, kind.rawValue])
        hmac.update(data: sequenceBytes)
        hmac.update(data: payload)
        return Array(hmac.finalize().prefix(PeerFrame.macBytes))
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: ArraySlice<UInt8>) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for (x, y) in zip(a, b) { difference |= x ^ y }
        return difference == 0
    }
}
