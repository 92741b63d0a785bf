import ClusterCore
import RelayCore
import SeededRandom

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
    /// Graceful shutdowns (SIGTERM: drain, hand leadership over, exit) followed by a restart.
    public var handOversPerSecond: Double
    /// Share of crashes that come back on an empty disk.
    public var diskLossShare: Double
    /// The drift bound the nodes are configured with. Clock rates are drawn from
    /// [1 − drift/2, 1 + drift/2], so any two differ by less than it; `clocksAtTheBound` puts
    /// every rate at one end or the other.
    public var clockDrift: Double
    public var clocksAtTheBound: Bool
    /// Chance that a node crashes (and comes straight back) right after it has written a vote.
    public var crashAfterVoteShare: Double
    /// Chance that a leader freezes (longer than the lease) right after an intent of its applies,
    /// before it sends: the moment the send-time lease check is for.
    public var pauseAfterIntentShare: Double
    /// Few requests leave the heartbeat as the leader's only news to its followers.
    public var clientRequestsPerSecond: Int
    /// The nodes' upstream timeout: from well inside the lease to ten times it.
    public var upstreamTimeoutMilliseconds: Int64
    public var upstream: UpstreamMix

    public struct UpstreamMix: Sendable {
        public var rejectShare: Double
        public var throttleShare: Double
        public var serverErrorShare: Double
        /// A slow proxy or link: the request reaches PagerDuty after a delay, and the answer comes
        /// after another, each up to ten leases long; past the relay's timeout the request never
        /// arrives (the send deadline stops it) or its answer is not waited for.
        public var slowShare: Double
        /// Never answers.
        public var hangShare: Double

        public static let healthy = UpstreamMix(rejectShare: 0, throttleShare: 0, serverErrorShare: 0, slowShare: 0, hangShare: 0)
    }

    /// What a seed leans on. Most seeds mix every fault; some stress the lease, where the
    /// window in which a wrong lease rule shows is only the drift times the election timeout.
    public enum Focus: String, Sendable {
        case everything
        /// The largest drift bound, one clock at its slow end and the rest at the fast end, a fast
        /// network, few clients, and the leader cut off or paused again and again.
        case clocks
        /// Many elections with candidates racing: five nodes, a slow network (a wide window
        /// between a pre-vote and the vote requests), leaders crashing, and voters crashing just
        /// after they voted. What a bug in keeping votes needs to show.
        case elections
    }

    /// Every eighth seed runs `elections`. It is chosen by the seed rather than drawn, so that
    /// the other seeds keep the schedules they had before it existed.
    public static func forSeed(_ seed: UInt64, _ random: inout SplitMix64) -> FaultMix {
        guard seed % 8 == 0 else { return draw(&random) }
        return FaultMix(
            nodeCount: 5, dropProbability: Double(random.next() % 50) / 1_000, duplicateProbability: 0, maxNetworkDelayMilliseconds: 100,
            crashesPerSecond: 1.0, pausesPerSecond: 0.2, partitionsPerSecond: 0.3, handOversPerSecond: 0, diskLossShare: 0,
            clockDrift: 0.05, clocksAtTheBound: false, crashAfterVoteShare: 0.9, pauseAfterIntentShare: 0.02, clientRequestsPerSecond: 5,
            upstreamTimeoutMilliseconds: 700, upstream: .healthy, focus: .elections)
    }

    public var focus: Focus

    public static func draw(_ random: inout SplitMix64) -> FaultMix {
        func chance(_ maximum: Double) -> Double { Double(random.next() % 1_000) / 1_000 * maximum }
        if random.next() % 4 == 0 {
            return FaultMix(
                nodeCount: 3, dropProbability: 0, duplicateProbability: 0, maxNetworkDelayMilliseconds: 2, crashesPerSecond: 0,
                pausesPerSecond: 0.3, partitionsPerSecond: 1.5, handOversPerSecond: 0, diskLossShare: 0, clockDrift: 0.19,
                clocksAtTheBound: true,
                crashAfterVoteShare: 0, pauseAfterIntentShare: 0.02, clientRequestsPerSecond: 2, upstreamTimeoutMilliseconds: 700,
                upstream: .healthy,
                focus: .clocks)
        }
        return FaultMix(
            // One seed in eight runs a single node, the default deployment: no intents, no peers.
            nodeCount: [5, 5, 1, 3, 3, 3, 3, 3][Int(random.next() % 8)],
            dropProbability: chance(0.2), duplicateProbability: chance(0.1),
            maxNetworkDelayMilliseconds: 1 + Int64(random.next() % [3, 30, 100][Int(random.next() % 3)]),
            crashesPerSecond: chance(1.0), pausesPerSecond: chance(0.5), partitionsPerSecond: chance(0.8),
            handOversPerSecond: chance(0.8), diskLossShare: chance(0.5), clockDrift: [0.01, 0.05, 0.1, 0.19][Int(random.next() % 4)],
            clocksAtTheBound: random.next() % 2 == 0, crashAfterVoteShare: chance(0.5), pauseAfterIntentShare: chance(0.05),
            clientRequestsPerSecond: 2 + Int(random.next() % 30),
            upstreamTimeoutMilliseconds: [300, 700, 2_000, 5_000, 10_000][Int(random.next() % 5)],
            upstream: UpstreamMix(
                rejectShare: chance(0.05), throttleShare: chance(0.1), serverErrorShare: chance(0.15), slowShare: chance(0.3),
                hangShare: chance(0.05)),
            focus: .everything)
    }

    public var description: String {
        func percent(_ value: Double) -> String { "\(Int((value * 100).rounded()))%" }
        return
            "focus=\(focus.rawValue) nodes=\(nodeCount) drop=\(percent(dropProbability)) dup=\(percent(duplicateProbability)) delay≤\(maxNetworkDelayMilliseconds)ms drift=\(percent(clockDrift))\(clocksAtTheBound ? " at the bound" : "") crash/s=\(crashesPerSecond) pause/s=\(pausesPerSecond) partition/s=\(partitionsPerSecond) handover/s=\(handOversPerSecond) diskloss=\(percent(diskLossShare)) crash-after-vote=\(percent(crashAfterVoteShare)) pause-after-intent=\(percent(pauseAfterIntentShare)) clients/s=\(clientRequestsPerSecond) upstream timeout=\(upstreamTimeoutMilliseconds)ms: 400=\(percent(upstream.rejectShare)) 429=\(percent(upstream.throttleShare)) 5xx=\(percent(upstream.serverErrorShare)) slow=\(percent(upstream.slowShare)) hang=\(percent(upstream.hangShare))"
    }
}
