import RelayReplication

/// Runs a peer stream's handshake between two `PeerHandshake`s in memory, each side's bytes
/// delivered whole to the other, until both are done: what the stream's pure tests and the
/// fuzz target start from.
public enum InMemoryHandshake {
    public struct Outcome {
        public var dialer: PeerSession?
        public var listener: PeerSession?
        public var dialerRefusal: PeerStreamRefusal?
        public var listenerRefusal: PeerStreamRefusal?
    }

    public static func run(
        dialer: inout PeerHandshake, listener: inout PeerHandshake, dialerClockMilliseconds: Int64 = 0,
        listenerClockMilliseconds: Int64 = 0
    ) -> Outcome {
        var outcome = Outcome()
        var toListener = PeerFrameSplitter(expectingPreface: true)
        var toDialer = PeerFrameSplitter(expectingPreface: false)
        toListener.append(dialer.opening())
        var listenerDone = false
        var dialerDone = false
        while true {
            if !listenerDone, let body = try! toListener.next() {
                switch listener.receive(body, wallClockMilliseconds: listenerClockMilliseconds) {
                case .send(let bytes): toDialer.append(bytes)
                case .established(let session, _, let bytes):
                    outcome.listener = session
                    toDialer.append(bytes ?? [])
                    listenerDone = true
                case .refused(let refusal, let bytes):
                    outcome.listenerRefusal = refusal
                    toDialer.append(bytes ?? [])
                    listenerDone = true
                }
            } else if !dialerDone, let body = try! toDialer.next() {
                switch dialer.receive(body, wallClockMilliseconds: dialerClockMilliseconds) {
                case .send(let bytes): toListener.append(bytes)
                case .established(let session, _, _):
                    outcome.dialer = session
                    dialerDone = true
                case .refused(let refusal, let bytes):
                    outcome.dialerRefusal = refusal
                    toListener.append(bytes ?? [])
                    dialerDone = true
                }
            } else {
                return outcome
            }
        }
    }
}
