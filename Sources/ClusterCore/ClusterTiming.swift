/// The cluster's timing settings, checked together at startup: each rule below is one that, if
/// broken, lets two nodes believe they lead at once or keeps a leader from ever delivering.
public struct ClusterTiming: Sendable, Equatable {
    public var heartbeatIntervalMilliseconds: Int64
    /// Followers wait at least this long without hearing a leader before they campaign, and
    /// refuse to vote for anyone else within it. Election timeouts are drawn from [min, 2·min).
    public var minimumElectionTimeoutMilliseconds: Int64
    /// The largest difference in clock *rate* between two nodes, as a fraction (0.01 = 1 %).
    public var maxClockDrift: Double
    /// Each upstream request is cancelled hard at this time; it must fit inside the lease.
    public var upstreamTimeoutMilliseconds: Int64
    /// Extra room a delivery needs on the lease beyond the upstream timeout.
    public var deliveryMarginMilliseconds: Int64

    public init(
        heartbeatIntervalMilliseconds: Int64 = 100, minimumElectionTimeoutMilliseconds: Int64 = 1_000, maxClockDrift: Double = 0.01,
        upstreamTimeoutMilliseconds: Int64 = 700, deliveryMarginMilliseconds: Int64 = 50
    ) {
        self.heartbeatIntervalMilliseconds = heartbeatIntervalMilliseconds
        self.minimumElectionTimeoutMilliseconds = minimumElectionTimeoutMilliseconds
        self.maxClockDrift = maxClockDrift
        self.upstreamTimeoutMilliseconds = upstreamTimeoutMilliseconds
        self.deliveryMarginMilliseconds = deliveryMarginMilliseconds
    }

    /// How long a lease lasts after the heartbeat round that earned it was *sent*: the minimum
    /// election timeout shortened by the drift bound, so that it ends, on any real clock, before
    /// a follower that acknowledged the round could vote for someone else.
    public var leaseDurationMilliseconds: Int64 {
        Int64((Double(minimumElectionTimeoutMilliseconds) * (1 - maxClockDrift)).rounded(.down))
    }

    public func validate() throws(TimingError) {
        guard heartbeatIntervalMilliseconds > 0 else { throw TimingError("heartbeat_interval_milliseconds must be positive") }
        guard (0..<0.2).contains(maxClockDrift) else { throw TimingError("max_clock_drift must be in [0, 0.2)") }
        guard minimumElectionTimeoutMilliseconds >= 3 * heartbeatIntervalMilliseconds else {
            throw TimingError(
                "minimum_election_timeout_milliseconds (\(minimumElectionTimeoutMilliseconds)) must be at least 3 × heartbeat_interval_milliseconds (\(heartbeatIntervalMilliseconds)), or followers campaign after missing a single heartbeat"
            )
        }
        guard upstreamTimeoutMilliseconds > 0, deliveryMarginMilliseconds >= 0 else {
            throw TimingError("upstream_timeout_milliseconds must be positive and delivery_margin_milliseconds not negative")
        }
        // Right after renewal the lease has leaseDuration − (time since the round was sent) left,
        // and it is renewed once per heartbeat, so a delivery can start only if this holds.
        let usable = leaseDurationMilliseconds - heartbeatIntervalMilliseconds
        guard upstreamTimeoutMilliseconds + deliveryMarginMilliseconds <= usable else {
            throw TimingError(
                "upstream_timeout_milliseconds (\(upstreamTimeoutMilliseconds)) + delivery_margin_milliseconds (\(deliveryMarginMilliseconds)) must fit in the lease less one heartbeat (\(usable) ms = minimum election timeout × (1 − max drift) − heartbeat), or no delivery could ever start: a delivery must end before the lease does"
            )
        }
    }
}

public struct TimingError: Error, Sendable, Equatable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
