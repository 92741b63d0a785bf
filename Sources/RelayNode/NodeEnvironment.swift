import Foundation

/// The node's sources of time and randomness, injected so that the engine's decisions can be
/// replayed in tests. Leases, timeouts and backoff use the monotonic clock only; the wall clock
/// stamps events for people and for the duplicate window.
public struct NodeEnvironment: Sendable {
    public var monotonicMilliseconds: @Sendable () -> Int64
    public var wallClockMilliseconds: @Sendable () -> Int64
    /// Uniform in [0, 1), for backoff jitter.
    public var jitter: @Sendable () -> Double
    /// A fresh dedup_key for a trigger that came without one.
    public var newKey: @Sendable () -> String
    /// Seeds the Raft node's election timer (and the snapshot sender's transfer ids): nodes
    /// started together must not time out together.
    public var seed: @Sendable () -> UInt64 = { UInt64.random(in: .min ... .max) }
    /// A gap longer than this between two looks at the clock (normally 10 ms apart) means the
    /// process was frozen. It matches HAProxy's `timeout server` in deploy/haproxy.cfg: a request
    /// held longer than that has been retried on another node. (Tests that run nodes inside a
    /// busy test process raise it: there a starved scheduler is not a frozen node.)
    public var freezeThresholdMilliseconds: Int64 = 1_000
    /// Requests read this soon after a freeze ended are refused too: they may have waited in
    /// the kernel's socket buffer through it, and are read only now. (A test on a busy machine
    /// widens it, because there a request may take longer than this to be read.)
    public var afterFreezeGraceMilliseconds: Int64 = 200

    public init(
        monotonicMilliseconds: @escaping @Sendable () -> Int64, wallClockMilliseconds: @escaping @Sendable () -> Int64,
        jitter: @escaping @Sendable () -> Double, newKey: @escaping @Sendable () -> String
    ) {
        self.monotonicMilliseconds = monotonicMilliseconds
        self.wallClockMilliseconds = wallClockMilliseconds
        self.jitter = jitter
        self.newKey = newKey
    }

    public static let live: NodeEnvironment = {
        let origin = ContinuousClock.now
        return NodeEnvironment(
            monotonicMilliseconds: { (ContinuousClock.now - origin).wholeMilliseconds },
            wallClockMilliseconds: { Int64(Date().timeIntervalSince1970 * 1_000) },
            jitter: { Double.random(in: 0..<1) },
            newKey: {
                var generator = SystemRandomNumberGenerator()
                return [generator.next(), generator.next()].map { (word: UInt64) in
                    let hex = String(word, radix: 16)
                    return String(repeating: "0", count: 16 - hex.count) + hex
                }.joined()
            })
    }()
}

extension Duration {
    public var wholeMilliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000 + attoseconds / 1_000_000_000_000_000
    }
}
