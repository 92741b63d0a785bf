import EngineCore

extension RelayConfiguration {
    /// The engine core's limits, from this configuration and the node's environment.
    func engineSettings(_ environment: NodeEnvironment) -> EngineSettings {
        EngineSettings(
            timing: timing, commitTimeoutMilliseconds: commitTimeoutMilliseconds, maxCommitBatchEvents: maxCommitBatchEvents,
            deliveryConcurrency: deliveryConcurrency, retry: retry, deliveryBudget: deliveryBudget,
            readinessMaxLagEntries: readinessMaxLagEntries,
            freezeThresholdMilliseconds: environment.freezeThresholdMilliseconds,
            afterFreezeGraceMilliseconds: environment.afterFreezeGraceMilliseconds, snapshotThresholdEntries: snapshotThresholdEntries)
    }
}
