import EngineCore
import RelayCore

extension RelayConfiguration {
    /// The engine core's limits, from this configuration and the node's environment.
    func engineSettings(_ environment: NodeEnvironment) throws(ConfigurationError) -> EngineSettings {
        EngineSettings(
            timing: timing, commitTimeoutMilliseconds: commitTimeoutMilliseconds, maxCommitBatchEvents: maxCommitBatchEvents,
            deliveryConcurrency: deliveryConcurrency, retry: retry, deliveryBudget: try deliveryBudget,
            readinessMaxLagEntries: readinessMaxLagEntries,
            freezeThresholdMilliseconds: environment.freezeThresholdMilliseconds,
            afterFreezeGraceMilliseconds: environment.afterFreezeGraceMilliseconds, snapshotThresholdEntries: snapshotThresholdEntries)
    }
}
