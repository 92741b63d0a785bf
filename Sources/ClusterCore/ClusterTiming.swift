/// The cluster's timing settings, checked together at startup: each rule below is one that, if
/// broken, lets two nodes believe they lead at once or keeps a leader from ever delivering.
public struct ClusterTiming: Sendable, Equatable {
    public var heartbeatIntervalMilliseconds: Int64
    /// Followers wait at least this long without hearing a leader before they campaign, and
    /// refuse to vote for anyone else within it. Election timeouts are drawn from [min, 2·min).
    public var minimumElectionTimeoutMilliseconds: Int64
    /// The largest difference in clock *rate* between two nodes, as a fraction (0.01 = 1 %).
    public var maxClockDrift: Double
    /// Each upstream request is cancelled hard at this time, and no byte of it leaves later. It
    /// is independent of the lease: a key whose request may still be out waits this long (see
    /// `intentHoldMilliseconds`) after a failover, every other key not at all.
    public var upstreamTimeoutMilliseconds: Int64
    /// A send starts only while the lease has at least this much left, and a new leader adds it
    /// to its wait for an older term's request: room for the last bytes to reach the upstream.
    public var deliveryMarginMilliseconds: Int64

    public init(
        heartbeatIntervalMilliseconds: Int64 = 100, minimumElectionTimeoutMilliseconds: Int64 = 1_000, maxClockDrift: Double = 0.01,
        upstreamTimeoutMilliseconds: Int64 = 10_000, deliveryMarginMilliseconds: Int64 = 50
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

    /// The longest an upstream request may take: a key with a request in flight at a failover
    /// waits about this long before the new leader delivers it.
    public static let maxUpstreamTimeoutMilliseconds: Int64 = 300_000

    /// How long a new leader holds a key whose last intent came from an older term: that term's
    /// request may still be on its way until its hard deadline, `upstreamTimeout` on the old
    /// leader's clock, which may run slower than this one's by the drift bound; the margin covers
    /// the last bytes' way to the upstream. The old leader sent only while its lease held, so
    /// before this node took office, which is where the hold is counted from.
    public var intentHoldMilliseconds: Int64 {
        upstreamTimeoutMilliseconds + Int64((Double(upstreamTimeoutMilliseconds) * maxClockDrift).rounded(.up)) + deliveryMarginMilliseconds
    }

    /// How long a leader's disk write may run before its heartbeats stop overtaking it
    /// (`RaftNode.Ready.takeHeartbeats`): the minimum election timeout. A shorter stall (an fsync
    /// of a large batch on a busy disk: over half a second was seen with 500-KB events) costs no
    /// election; past it, the leader's disk is stuck, and a leader that cannot write must not
    /// keep the cluster: its heartbeats then wait behind the write, and the followers elect
    /// another leader an election timeout later.
    public var diskStallToleranceMilliseconds: Int64 { minimumElectionTimeoutMilliseconds }

    public func validate() throws(TimingError) {
        guard heartbeatIntervalMilliseconds > 0 else { throw TimingError("heartbeat_interval_milliseconds must be positive") }
        guard (0..<0.2).contains(maxClockDrift) else { throw TimingError("max_clock_drift must be in [0, 0.2)") }
        guard minimumElectionTimeoutMilliseconds >= 3 * heartbeatIntervalMilliseconds else {
            throw TimingError(
                "minimum_election_timeout_milliseconds (\(minimumElectionTimeoutMilliseconds)) must be at least 3 × heartbeat_interval_milliseconds (\(heartbeatIntervalMilliseconds)), or followers campaign after missing a single heartbeat"
            )
        }
        guard (1...Self.maxUpstreamTimeoutMilliseconds).contains(upstreamTimeoutMilliseconds) else {
            throw TimingError(
                "upstream_timeout_milliseconds (\(upstreamTimeoutMilliseconds)) must be 1…\(Self.maxUpstreamTimeoutMilliseconds): a key in flight at a failover waits that long for the old leader's request to end"
            )
        }
        guard deliveryMarginMilliseconds > 0 else {
            throw TimingError(
                "delivery_margin_milliseconds must be positive: it is the room for a request's last bytes to reach the upstream before a new leader sends for the same key"
            )
        }
        // Right after renewal the lease has leaseDuration − (time since the round was sent) left,
        // and it is renewed once per heartbeat, so a send can start only if this holds.
        let usable = leaseDurationMilliseconds - heartbeatIntervalMilliseconds
        guard deliveryMarginMilliseconds <= usable / 2 else {
            throw TimingError(
                "delivery_margin_milliseconds (\(deliveryMarginMilliseconds)) must be at most half the lease less one heartbeat (\(usable) ms = minimum election timeout × (1 − max drift) − heartbeat), or sends would start only in a sliver of each lease"
            )
        }
    }
}

public struct TimingError: Error, Sendable, Equatable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
