import ClusterCore

/// The faults one seed runs with. Each seed draws its own mix, so a sweep covers quiet networks,
/// lossy ones, crash storms and flaky upstreams alike.
public struct FaultMix: Sendable, CustomStringConvertible {
    public var nodeCount: Int
    public var dropProbability: Double
    public var duplicateProbability: Double
    public var maxNetworkDelayMilliseconds: Int64
    /// Chance per simulated second that a fault event (crash, pause, partition) starts.
    public var crashesPerSecond: Double
    public var pausesPerSecond: Double
    public var partitionsPerSecond: Double
    /// Share of crashes that come back on an empty disk.
    public var diskLossShare: Double
    /// The drift bound the nodes are configured with. Clock rates are drawn from
    /// [1 − drift/2, 1 + drift/2], so any two differ by less than it; `clocksAtTheBound` puts
    /// every rate at one end or the other.
    public var clockDrift: Double
    public var clocksAtTheBound: Bool
    /// Chance that a node crashes (and comes straight back) right after it has written a vote.
    public var crashAfterVoteShare: Double
    public var upstream: UpstreamMix

    public struct UpstreamMix: Sendable {
        public var rejectShare: Double
        public var throttleShare: Double
        public var serverErrorShare: Double
        /// Ingested, but the answer comes after the relay's timeout.
        public var slowShare: Double
        /// Never answers.
        public var hangShare: Double

        public static let healthy = UpstreamMix(rejectShare: 0, throttleShare: 0, serverErrorShare: 0, slowShare: 0, hangShare: 0)
    }

    public static func draw(_ random: inout SplitMix64) -> FaultMix {
        func chance(_ maximum: Double) -> Double { Double(random.next() % 1_000) / 1_000 * maximum }
        return FaultMix(
            nodeCount: random.next() % 4 == 0 ? 5 : 3,
            dropProbability: chance(0.2), duplicateProbability: chance(0.1),
            maxNetworkDelayMilliseconds: 1 + Int64(random.next() % 40),
            crashesPerSecond: chance(1.0), pausesPerSecond: chance(0.5), partitionsPerSecond: chance(0.8),
            diskLossShare: chance(0.5), clockDrift: [0.01, 0.05, 0.1, 0.15][Int(random.next() % 4)],
            clocksAtTheBound: random.next() % 2 == 0, crashAfterVoteShare: chance(0.5),
            upstream: UpstreamMix(
                rejectShare: chance(0.05), throttleShare: chance(0.1), serverErrorShare: chance(0.15), slowShare: chance(0.05),
                hangShare: chance(0.05)))
    }

    public var description: String {
        func percent(_ value: Double) -> String { "\(Int((value * 100).rounded()))%" }
        return
            "nodes=\(nodeCount) drop=\(percent(dropProbability)) dup=\(percent(duplicateProbability)) delay≤\(maxNetworkDelayMilliseconds)ms drift=\(percent(clockDrift))\(clocksAtTheBound ? " at the bound" : "") crash/s=\(crashesPerSecond) pause/s=\(pausesPerSecond) partition/s=\(partitionsPerSecond) diskloss=\(percent(diskLossShare)) crash-after-vote=\(percent(crashAfterVoteShare)) upstream: 400=\(percent(upstream.rejectShare)) 429=\(percent(upstream.throttleShare)) 5xx=\(percent(upstream.serverErrorShare)) slow=\(percent(upstream.slowShare)) hang=\(percent(upstream.hangShare))"
    }
}
