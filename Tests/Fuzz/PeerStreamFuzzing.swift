import ClusterCore
import RelayCore
import RelayReplication
import RelayTestSupport

/// The peer stream's decoding under libFuzzer. The first byte picks what the rest is:
/// - 0: bytes from a stranger to a listener (preface, framing, handshake frames);
/// - 1: bytes on an authenticated connection (framing, seals, sequence numbers);
/// - 2: a payload sealed by a genuine peer, which must open to itself and then meets the
///   message decoder, as an authenticated peer's frames do.
/// Any input may be refused; none may crash, and nothing beyond the limits may come out.
enum PeerStreamFuzzing {
    static let settings = (
        listener: PeerHandshake.Settings(selfID: 1, members: [1, 2, 3], secrets: ["fuzz-secret"], maxClockSkewMilliseconds: 60_000),
        dialer: PeerHandshake.Settings(selfID: 2, members: [1, 2, 3], secrets: ["fuzz-secret"], maxClockSkewMilliseconds: 60_000)
    )

    static func run(_ input: [UInt8]) {
        guard let mode = input.first else { return }
        let rest = Array(input.dropFirst())
        switch mode % 3 {
        case 0:
            var handshake = PeerHandshake(
                role: .listener, settings: settings.listener, nonce: [UInt8](repeating: 7, count: 32), wallClockMilliseconds: 0)
            var splitter = PeerFrameSplitter(expectingPreface: true)
            splitter.append(rest)
            while let body = try? splitter.next() {
                precondition(body.count <= PeerFrame.maxBodyBytes, "a body over the limit")
                if case .refused = handshake.receive(body, wallClockMilliseconds: 0) { return }
            }
        case 1:
            var (_, listener) = sessions()
            var splitter = PeerFrameSplitter(expectingPreface: false)
            splitter.append(rest)
            while let body = try? splitter.next() {
                guard (try? listener.open(body)) != nil else { return }
            }
        default:
            var (dialer, listener) = sessions()
            var splitter = PeerFrameSplitter(expectingPreface: false)
            splitter.append(dialer.seal(.messages, payload: rest))
            guard let body = try? splitter.next(), let opened = try? listener.open(body) else {
                preconditionFailure("a genuine frame did not open")
            }
            precondition(opened.kind == .messages && Array(opened.payload) == rest, "a frame opened to something else")
            _ = try? MessageCodec.decode(rest, limits: RelayStateMachine.Limits())
        }
    }

    /// Both ends of a connection, after a real handshake in memory.
    static func sessions() -> (dialer: PeerSession, listener: PeerSession) {
        var dialer = PeerHandshake(
            role: .dialer(peer: 1), settings: settings.dialer, nonce: [UInt8](repeating: 1, count: 32), wallClockMilliseconds: 0)
        var listener = PeerHandshake(
            role: .listener, settings: settings.listener, nonce: [UInt8](repeating: 2, count: 32), wallClockMilliseconds: 0)
        let outcome = InMemoryHandshake.run(dialer: &dialer, listener: &listener)
        guard let dialerSession = outcome.dialer, let listenerSession = outcome.listener else {
            preconditionFailure("the in-memory handshake failed: \(String(describing: outcome.dialerRefusal ?? outcome.listenerRefusal))")
        }
        return (dialerSession, listenerSession)
    }
}
