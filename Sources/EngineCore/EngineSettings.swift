import ClusterCore
import RelayCore

/// The limits the engine's decisions depend on, each with its reason. The node's configuration
/// fills them in (`RelayConfiguration.engineSettings`); the simulator picks its own.
public struct EngineSettings: Sendable {
    /// Heartbeat, election, lease and upstream-timeout rules of the cluster.
    public var timing: ClusterTiming
    /// A command not applied within this is answered "outcome unknown": the client retries, and
    /// dedup makes the retry harmless.
    public var commitTimeoutMilliseconds: Int64
    /// Commands proposed in one log append at most: a burst is split, so one append (and the
    /// fsync it waits for) stays bounded.
    public var maxCommitBatchEvents: Int
    /// Keys with a request out at once, at most.
    public var deliveryConcurrency: Int
    public var retry: RetryPolicy
    /// Requests a minute per routing key (`DeliveryBudget`): PagerDuty's limit, spent by the
    /// relay so it is not learnt from 429s.
    public var deliveryBudget: DeliveryBudget.Policy
    /// A follower further behind than this logs its progress while catching up.
    public var readinessMaxLagEntries: Int
    /// A gap longer than this between two looks at the clock means the process was frozen.
    public var freezeThresholdMilliseconds: Int64
    /// Requests read this soon after a freeze ended are refused too (see `NodeEnvironment`).
    public var afterFreezeGraceMilliseconds: Int64
    /// Entries kept in the log before it is compacted into a snapshot.
    public var snapshotThresholdEntries: Int
    /// How long store writes of applied entries may wait for the next transaction before one is
    /// made for them alone: under load they ride along with the next entries; when idle, the
    /// tables catch up within this.
    public var appliedFlushDelayMilliseconds: Int64 = 50
    /// How often a follower that is catching up says how far it has come.
    public var catchUpReportMilliseconds: Int64 = 5_000
    /// Deliberate bugs, for the simulator's tests; ignored in release builds.
    public var faults: EngineFaults = .none

    public init(
        timing: ClusterTiming, commitTimeoutMilliseconds: Int64, maxCommitBatchEvents: Int, deliveryConcurrency: Int,
        retry: RetryPolicy, deliveryBudget: DeliveryBudget.Policy, readinessMaxLagEntries: Int, freezeThresholdMilliseconds: Int64,
        afterFreezeGraceMilliseconds: Int64,
        snapshotThresholdEntries: Int
    ) {
        precondition(commitTimeoutMilliseconds > 0 && maxCommitBatchEvents > 0 && deliveryConcurrency > 0, "engine limits must be positive")
        self.timing = timing
        self.commitTimeoutMilliseconds = commitTimeoutMilliseconds
        self.maxCommitBatchEvents = maxCommitBatchEvents
        self.deliveryConcurrency = deliveryConcurrency
        self.retry = retry
        self.deliveryBudget = deliveryBudget
        self.readinessMaxLagEntries = readinessMaxLagEntries
        self.freezeThresholdMilliseconds = freezeThresholdMilliseconds
        self.afterFreezeGraceMilliseconds = afterFreezeGraceMilliseconds
        self.snapshotThresholdEntries = snapshotThresholdEntries
    }
}
