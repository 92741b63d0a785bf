import ClusterCore

/// What this node knows of its wall clock against others': each peer's (from the timestamps
/// on peer requests and answers, heartbeats included) and the upstream's (from the `Date`
/// header of its answers). Leases and timeouts use monotonic time and do not care; but peer
/// requests carry a wall-clock timestamp that the receiver accepts within
/// `PeerAuthenticator.maxClockSkewMilliseconds`, and events are stamped with the proposer's
/// wall clock. A skew beyond `boundMilliseconds` is named here before it breaks anything.
///
/// Pure: every call takes the monotonic time, so tests drive it without a clock.
struct ClockSkewWatch: Sendable {
    enum Source: Hashable, Sendable, CustomStringConvertible {
        case peer(NodeID)
        case upstream

        var description: String {
            switch self {
            case .peer(let id): "node \(id)"
            case .upstream: "the upstream"
            }
        }

        /// The metric label.
        var label: String {
            switch self {
            case .peer(let id): "node-\(id)"
            case .upstream: "upstream"
            }
        }
    }

    struct Measurement: Sendable, Equatable {
        /// The other clock minus this node's: positive when the other is ahead.
        var skewMilliseconds: Int64
        var measuredAtMilliseconds: Int64
    }

    /// Above this a skew is a problem (`max_clock_skew_milliseconds`).
    let boundMilliseconds: Int64
    private(set) var latest: [Source: Measurement] = [:]
    /// A warning about one source is logged at most every 30 s, however many requests show it.
    private var warnings = LogThrottle<Source>(intervalMilliseconds: 30_000)
    /// A measurement older than this no longer describes the clocks (the peer is gone, or the
    /// upstream has not answered): it is dropped from the problems.
    static let staleAfterMilliseconds: Int64 = 120_000

    init(boundMilliseconds: Int64) {
        precondition(
            boundMilliseconds > 0 && boundMilliseconds < PeerAuthenticator.maxClockSkewMilliseconds,
            "the skew bound must warn before peers refuse each other")
        self.boundMilliseconds = boundMilliseconds
    }

    /// Records a measurement; returns the warning to log, when the skew is beyond the bound and
    /// none was logged for this source lately.
    mutating func record(_ source: Source, skewMilliseconds: Int64, now: Int64) -> String? {
        latest[source] = Measurement(skewMilliseconds: skewMilliseconds, measuredAtMilliseconds: now)
        guard abs(skewMilliseconds) > boundMilliseconds, warnings.allows(source, now: now) else { return nil }
        return Self.describe(source, skewMilliseconds: skewMilliseconds, bound: boundMilliseconds)
    }

    /// Beyond the peer signature's window the skew is no longer a warning of what may break: the
    /// two nodes refuse each other's requests. The line says so, with the window's own bound.
    static func describe(_ source: Source, skewMilliseconds: Int64, bound: Int64) -> String {
        guard case .peer = source, abs(skewMilliseconds) > PeerAuthenticator.maxClockSkewMilliseconds else {
            return describeSkew(source, skewMilliseconds: skewMilliseconds, bound: bound)
        }
        return describeSkew(source, skewMilliseconds: skewMilliseconds, bound: PeerAuthenticator.maxClockSkewMilliseconds)
            + ": peer requests between the two are refused until the clocks agree (check NTP on both hosts)"
    }

    /// One line per source whose latest, fresh measurement is beyond the bound.
    func problems(now: Int64) -> [String] {
        latest.filter { now - $0.value.measuredAtMilliseconds <= Self.staleAfterMilliseconds }
            .filter { abs($0.value.skewMilliseconds) > boundMilliseconds }
            .sorted { $0.key.label < $1.key.label }
            .map { Self.describe($0.key, skewMilliseconds: $0.value.skewMilliseconds, bound: boundMilliseconds) }
    }

    /// "clock skew of 3600 s with node 3 exceeds 60 s (node 3's clock is ahead)": the words an
    /// operator greps for, in the log, in `/v1/cluster` and in a refused peer request's answer.
    static func describeSkew(_ source: Source, skewMilliseconds: Int64, bound: Int64) -> String {
        let direction = skewMilliseconds > 0 ? "ahead of" : "behind"
        return
            "clock skew of \(seconds(abs(skewMilliseconds))) s with \(source) exceeds \(seconds(bound)) s (\(source)'s clock is \(direction) this node's)"
    }

    /// Whole seconds, or one decimal below ten.
    static func seconds(_ milliseconds: Int64) -> String {
        milliseconds >= 10_000 ? String(milliseconds / 1_000) : String(Double(milliseconds / 100) / 10)
    }
}
