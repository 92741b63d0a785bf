import ClusterCore
import Foundation
import RelayCore
import RelayReplication
import RelayTestSupport
import Testing

/// The peer stream's pure parts: framing, the handshake and the seal. Bytes in, frames or
/// refusals out; the real connections are `PeerAuthenticationTests`' and the cluster tests'.
@Suite struct PeerStreamTests {
    static let secret = "0123456789abcdef0123456789abcdef-stream"

    static func settings(_ node: NodeID, secrets: [String] = [secret], skew: Int64 = 60_000) -> PeerHandshake.Settings {
        PeerHandshake.Settings(selfID: node, members: [1, 2, 3], secrets: secrets, maxClockSkewMilliseconds: skew)
    }

    static func pair(
        dialerSecrets: [String] = [secret], listenerSecrets: [String] = [secret], dialerClock: Int64 = 0, listenerClock: Int64 = 0,
        dialerNonce: UInt8 = 1
    ) -> (InMemoryHandshake.Outcome, dialer: PeerHandshake, listener: PeerHandshake) {
        var dialer = PeerHandshake(
            role: .dialer(peer: 1), settings: settings(2, secrets: dialerSecrets), nonce: [UInt8](repeating: dialerNonce, count: 32),
            wallClockMilliseconds: dialerClock)
        var listener = PeerHandshake(
            role: .listener, settings: settings(1, secrets: listenerSecrets), nonce: [UInt8](repeating: 9, count: 32),
            wallClockMilliseconds: listenerClock)
        let outcome = InMemoryHandshake.run(
            dialer: &dialer, listener: &listener, dialerClockMilliseconds: dialerClock, listenerClockMilliseconds: listenerClock)
        return (outcome, dialer, listener)
    }

    /// Why `body` was refused, or nil if it was not.
    static func refusal(_ body: () throws(PeerStreamRefusal) -> Void) -> PeerStreamRefusal.Reason? {
        do {
            try body()
            return nil
        } catch {
            return error.reason
        }
    }

    static func established() throws -> (dialer: PeerSession, listener: PeerSession) {
        let (outcome, _, _) = pair()
        return (try #require(outcome.dialer), try #require(outcome.listener))
    }

    static func body(_ frame: [UInt8]) throws -> ArraySlice<UInt8> {
        var splitter = PeerFrameSplitter(expectingPreface: false)
        splitter.append(frame)
        return try #require(try splitter.next())
    }

    @Test func bothSidesSealAndOpenEachOthersFramesInOrder() throws {
        var (dialer, listener) = try Self.established()
        for index in 0..<5 {
            let payload = [UInt8](repeating: UInt8(index), count: index * 100)
            let opened = try listener.open(try Self.body(dialer.seal(.messages, payload: payload)))
            #expect(opened.kind == .messages && Array(opened.payload) == payload)
            let back = try dialer.open(try Self.body(listener.seal(.clock, payload: PeerFrame.clock(Int64(index)))))
            #expect(try PeerFrame.readClock(back.payload) == Int64(index))
        }
    }

    /// Every single-byte change of a sealed frame is refused, none opened.
    @Test func aFrameChangedInAnyByteIsRefused() throws {
        var (dialer, _) = try Self.established()
        let frame = dialer.seal(.forward, payload: Array("forwarded commands".utf8))
        for position in PeerFrame.lengthBytes..<frame.count {
            var (_, listener) = try Self.established()
            var changed = frame
            changed[position] ^= 0x20
            #expect(throws: PeerStreamRefusal.self, "byte \(position)") { try listener.open(try Self.body(changed)) }
        }
    }

    @Test func aReplayedReflectedOrForeignFrameIsRefusedByName() throws {
        var (dialer, listener) = try Self.established()
        let frame = try Self.body(dialer.seal(.messages, payload: [1, 2, 3]))
        _ = try listener.open(frame)
        #expect(Self.refusal { () throws(PeerStreamRefusal) in _ = try listener.open(frame) } == .replayed)
        // The listener's own frame, sent back to it.
        var (_, listener2) = try Self.established()
        let own = try Self.body(listener2.seal(.messages, payload: [1]))
        #expect(Self.refusal { () throws(PeerStreamRefusal) in _ = try listener2.open(own) } == .tampered)
        // Sealed on another connection (other nonces, so another key), with the number due here.
        let (other, _, _) = Self.pair(dialerNonce: 3)
        var otherDialer = try #require(other.dialer)
        var (_, fresh) = try Self.established()
        let foreign = try Self.body(otherDialer.seal(.messages, payload: [1]))
        #expect(Self.refusal { () throws(PeerStreamRefusal) in _ = try fresh.open(foreign) } == .tampered)
    }

    /// Bytes arriving one at a time, or all at once, give the same frames; a frame cut short
    /// gives nothing; a length past the limit is refused before it is buffered.
    @Test func theSplitterYieldsOnlyWholeFramesWhateverTheReads() throws {
        let frames = [PeerFrame.encode(kind: .messages, parts: [[1, 2, 3]]), PeerFrame.encode(kind: .clock, parts: [PeerFrame.clock(7)])]
        let stream = PeerFrame.preface + frames.joined()
        var byteByByte = PeerFrameSplitter(expectingPreface: true)
        var bodies: [[UInt8]] = []
        for byte in stream {
            byteByByte.append([byte])
            while let body = try byteByByte.next() { bodies.append(Array(body)) }
        }
        #expect(bodies == frames.map { Array($0.dropFirst(PeerFrame.lengthBytes)) })

        var cut = PeerFrameSplitter(expectingPreface: false)
        cut.append(frames[0].dropLast())
        #expect(try cut.next() == nil)

        var huge = PeerFrameSplitter(expectingPreface: false)
        huge.append([0xFF, 0xFF, 0xFF, 0xFF])
        #expect(throws: PeerStreamRefusal.self) { try huge.next() }
        var empty = PeerFrameSplitter(expectingPreface: false)
        empty.append([0, 0, 0, 0])
        #expect(throws: PeerStreamRefusal.self) { try empty.next() }
        var http = PeerFrameSplitter(expectingPreface: true)
        http.append(Array("POST /cluster/v1/status HTTP/1.1\r\n".utf8))
        #expect(throws: PeerStreamRefusal.self) { try http.next() }
    }

    @Test func anotherSecretIsRefusedAndARotationIsAccepted() throws {
        let (wrong, _, _) = Self.pair(dialerSecrets: ["another-secret-another-secret-000"])
        #expect(wrong.dialer == nil && wrong.listener == nil)
        #expect(wrong.listenerRefusal?.reason == .badProof)
        #expect(wrong.dialerRefusal?.reason == .refusedByPeer)
        #expect(wrong.dialerRefusal?.detail.contains("cluster_secret") == true)

        // Mid-rotation: the listener knows both; the dialer proves with either.
        let next = "fedcba9876543210fedcba9876543210-next"
        for dialerSecrets in [[Self.secret], [next, Self.secret]] {
            let (rotated, _, _) = Self.pair(dialerSecrets: dialerSecrets, listenerSecrets: [Self.secret, next])
            var dialer = try #require(rotated.dialer)
            var listener = try #require(rotated.listener)
            #expect(try listener.open(try Self.body(dialer.seal(.clock, payload: PeerFrame.clock(1)))).kind == .clock)
        }
    }

    /// Each side reads the other's clock from its first frame; beyond the bound both refuse,
    /// and both have measured the skew.
    @Test func clocksTooFarApartAreMeasuredAndRefusedOnBothSides() {
        let (outcome, dialer, listener) = Self.pair(dialerClock: 3_600_000, listenerClock: 0)
        #expect(outcome.listenerRefusal?.reason == .clockSkew)
        #expect(outcome.dialerRefusal?.reason == .clockSkew)
        #expect(listener.measuredSkew?.peer == 2 && listener.measuredSkew?.milliseconds == 3_600_000)
        #expect(dialer.measuredSkew?.peer == 1 && dialer.measuredSkew?.milliseconds == -3_600_000)
        let (close, _, _) = Self.pair(dialerClock: 59_000, listenerClock: 0)
        #expect(close.dialer != nil && close.listener != nil)
    }

    @Test func strangersAndFramesOutOfTurnEndTheHandshake() {
        var listener = PeerHandshake(
            role: .listener, settings: Self.settings(1), nonce: [UInt8](repeating: 9, count: 32), wallClockMilliseconds: 0)
        let proofFirst = PeerFrame.encode(kind: .proof, parts: [[UInt8](repeating: 0, count: 32)])
        guard case .refused(let refusal, _) = listener.receive(proofFirst.dropFirst(PeerFrame.lengthBytes), wallClockMilliseconds: 0)
        else {
            Issue.record("a proof before the hello was taken")
            return
        }
        #expect(refusal.reason == .malformed)

        var stranger = PeerHandshake(
            role: .dialer(peer: 1),
            settings: PeerHandshake.Settings(selfID: 7, members: [1, 7], secrets: [Self.secret], maxClockSkewMilliseconds: 60_000),
            nonce: [UInt8](repeating: 1, count: 32), wallClockMilliseconds: 0)
        var member = PeerHandshake(
            role: .listener, settings: Self.settings(1), nonce: [UInt8](repeating: 9, count: 32), wallClockMilliseconds: 0)
        let outcome = InMemoryHandshake.run(dialer: &stranger, listener: &member)
        #expect(outcome.listenerRefusal?.reason == .unknownPeer)

        // A refusal's text comes from an unauthenticated peer and goes to the log: no line breaks.
        var dialer = PeerHandshake(
            role: .dialer(peer: 1), settings: Self.settings(2), nonce: [UInt8](repeating: 1, count: 32), wallClockMilliseconds: 0)
        let forged = PeerFrame.encode(kind: .refused, parts: [Array("no\n2026-12-04 critical pdrelay: forged".utf8)])
        guard case .refused(let told, _) = dialer.receive(forged.dropFirst(PeerFrame.lengthBytes), wallClockMilliseconds: 0) else {
            Issue.record("a refused frame did not end the handshake")
            return
        }
        #expect(told.reason == .refusedByPeer && !told.detail.contains("\n") && told.detail.contains("no?2026"))
    }
}

/// Inputs the peerstream fuzz target found (scripts/fuzz peerstream), kept so that they stay fixed.
@Suite struct PeerStreamFuzzRegressionTests {
    /// `peerstream-snapshot-bad-contents`: a message batch (mode 2, after the first byte) holding
    /// an `installSnapshot` whose contents break what `RelayStateMachine.init` holds as
    /// preconditions. The decoder let it through and the node trapped; now it is refused.
    @Test func aSnapshotWhoseContentsDoNotAddUpIsRefusedNotATrap() throws {
        let input = Array(
            try Data(
                contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                    .appendingPathComponent("Fixtures/fuzz-regressions/peerstream-snapshot-bad-contents")))
        #expect(throws: DecodingFailure.self) { try MessageCodec.decode(Array(input.dropFirst()), limits: .init()) }
    }
}
