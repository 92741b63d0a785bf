import ClusterCore

/// What keeps a node from taking events, in `/readyz`'s sense: a store that takes no synced
/// write, a queue at its high-water mark, and in a cluster no majority, no leader, or a log too
/// far behind. `/readyz` and systemd's `READY=1` ask the same question, so the service manager
/// and the load balancer never disagree about when a node is ready.
struct Readiness: Sendable {
    let engine: RelayEngine
    let members: [ClusterMember]
    let readinessMaxLagEntries: Int
    let queueHighWaterEvents: Int

    /// Empty when ready. `asLeader` adds the leader check of `/readyz/leader`.
    func problems(asLeader: Bool) async -> [String] {
        var problems: [String] = []
        if let failure = await engine.probeStore() { problems.append("store not writable: \(failure)") }
        if members.count > 1 {
            let view = await engine.clusterView()
            problems += OperationsRoutes.clusterProblems(view, maxLag: readinessMaxLagEntries)
            if asLeader && (view.role != .leader || view.leaseRemainingMilliseconds == 0) {
                problems.append("not the leader holding a lease (role \(view.role.rawValue))")
            }
        }
        let queued = await engine.queuedCount
        if queued >= queueHighWaterEvents {
            problems.append("queue holds \(queued) events, at or above its high-water mark of \(queueHighWaterEvents)")
        }
        return problems
    }
}
