import Crypto
import Foundation
import NIOCore
import NIOPosix
import NIOSSL

/// A peer stream's dialer, written from docs/protocol.md ("The peer stream") rather than taken
/// from `PeerHandshake` and `PeerSession`: the oracle the stream tests probe a node with. It
/// speaks the wire format byte by byte, and can seal frames it then tampers with, replays, or
/// cuts short.
final class StreamPeer {
    enum Failure: Error { case closed, unexpected(String) }

    let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
    private var inbound: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
    private let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    private var received: [UInt8] = []
    private(set) var sessionKey: [UInt8] = []
    private var sequence: UInt64 = 0

    private init(channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>) throws {
        self.channel = channel
        inbound = channel.inbound.makeAsyncIterator()
        outbound = channel.outbound
    }

    /// `tls`: speak TLS first, as a node does when `peer_tls_*` are set.
    static func connect(port: Int, tls: NIOSSLContext? = nil) async throws -> StreamPeer {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: port) {
            channel in
            channel.eventLoop.makeCompletedFuture {
                if let tls { try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: tls, serverHostname: nil)) }
                return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
            }
        }
        return try StreamPeer(channel: channel)
    }

    static func bigEndian(_ value: UInt64, bytes: Int = 8) -> [UInt8] {
        (0..<bytes).reversed().map { UInt8(truncatingIfNeeded: value >> (8 * UInt64($0))) }
    }

    static func frame(kind: UInt8, _ body: [UInt8]) -> [UInt8] { bigEndian(UInt64(1 + body.count), bytes: 4) + [kind] + body }

    static func hmac(_ key: [UInt8], _ parts: [UInt8]...) -> [UInt8] {
        var mac = HMAC<SHA256>(key: SymmetricKey(data: key))
        for part in parts { mac.update(data: part) }
        return Array(mac.finalize())
    }

    func write(_ bytes: [UInt8]) async throws { try await outbound.write(ByteBuffer(bytes: bytes)) }

    /// The next frame's kind and body (after the kind byte), or `Failure.closed` at the end.
    func readFrame() async throws -> (kind: UInt8, body: [UInt8]) {
        while true {
            if received.count >= 4 {
                let length = Int(received[0..<4].reduce(0) { $0 << 8 | UInt64($1) })
                if received.count >= 4 + length {
                    let frame = Array(received[4..<4 + length])
                    received.removeFirst(4 + length)
                    return (frame[0], Array(frame.dropFirst()))
                }
            }
            guard let buffer = try? await inbound.next() else { throw Failure.closed }
            received += Array(buffer.readableBytesView)
        }
    }

    /// The text of a `refused` frame among what is left to read, if any.
    func refusalText() async -> String? {
        while let frame = try? await readFrame() {
            if frame.kind == 5 { return String(decoding: frame.body, as: UTF8.self) }
        }
        return nil
    }

    /// Whether the node ends the connection: frames it sends meanwhile (a `refused` one, clocks)
    /// are read past.
    func isClosedByNode() async -> Bool {
        while true {
            do { _ = try await readFrame() } catch { return true }
        }
    }

    /// Preface, hello, challenge, proof, welcome. Returns the refusal text if the node refused.
    @discardableResult
    func handshake(as node: UInt64, to listener: UInt64, secret: String, clockOffsetMilliseconds: Int64 = 0) async throws -> String? {
        let key = Array(SHA256.hash(data: Array(secret.utf8)))
        let nonce = (0..<32).map { _ in UInt8.random(in: 0...255) }
        let now = Int64(Date().timeIntervalSince1970 * 1_000) + clockOffsetMilliseconds
        try await write(
            Array("PDRS".utf8) + [1]
                + Self.frame(kind: 1, Self.bigEndian(node) + Self.bigEndian(listener) + nonce + Self.bigEndian(UInt64(bitPattern: now))))
        let challenge = try await readFrame()
        if challenge.kind == 5 { return String(decoding: challenge.body, as: UTF8.self) }
        guard challenge.kind == 2, challenge.body.count == 48 else { throw Failure.unexpected("challenge \(challenge)") }
        let transcript =
            Array("pdrelay peer stream v1".utf8) + Self.bigEndian(node) + Self.bigEndian(listener) + nonce + Array(challenge.body[8..<40])
        do {
            try await write(Self.frame(kind: 3, Self.hmac(key, [1], transcript)))
        } catch {
            // The node refused after its challenge (a skewed clock) and has closed already.
            return await refusalText() ?? "closed before the proof: \(error)"
        }
        let welcome = try await readFrame()
        if welcome.kind == 5 { return String(decoding: welcome.body, as: UTF8.self) }
        guard welcome.kind == 4, welcome.body == Self.hmac(key, [2], transcript) else { throw Failure.unexpected("welcome \(welcome)") }
        sessionKey = Self.hmac(key, [3], transcript)
        return nil
    }

    /// A sealed frame from the dialer, numbered next.
    func seal(kind: UInt8, _ payload: [UInt8]) -> [UInt8] {
        sequence += 1
        let number = Self.bigEndian(sequence)
        let mac = Array(Self.hmac(sessionKey, [1, kind], number, payload).prefix(16))
        return Self.frame(kind: kind, number + payload + mac)
    }

    func close() async {
        outbound.finish()
        try? await channel.channel.close()
    }

    /// NIO traps on an async channel's writer dropped unfinished: a peer a test never closed
    /// (one that threw midway) is finished and closed here.
    deinit {
        outbound.finish()
        channel.channel.close(promise: nil)
    }
}
