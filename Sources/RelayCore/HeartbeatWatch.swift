/// The leader's timers for heartbeats: which ones have missed their check-in by now. Pure:
/// the caller gives it the replicated heartbeats, whether this node leads, and its monotonic
/// clock, and proposes `heartbeatMissed` for what comes back.
///
/// **Fair restart.** Timers are the leader's own and are not replicated: another node's
/// monotonic clock means nothing here, and its wall clock may be skewed. A node that becomes
/// leader (or restarts) gives every heartbeat a full interval plus grace from that moment. So a
/// failover never raises a false alarm (a source that checked in just before it has its whole
/// interval), and never loses one (an alarm due during the failover is raised at most one
/// interval plus grace after the new leader took over).
public struct HeartbeatWatch: Sendable {
    /// Per heartbeat: the check-in count the deadline was set for, and the deadline.
    private var deadlines: [String: (checkIns: UInt64, periodMilliseconds: Int64, dueAtMilliseconds: Int64)] = [:]

    public init() {}

    /// Heartbeats whose deadline has passed without an alarm, with the check-in count the
    /// alarm is for (a check-in applied first makes the proposal a no-op).
    public mutating func due(_ heartbeats: [Heartbeat], isLeader: Bool, nowMilliseconds now: Int64) -> [(name: String, checkIns: UInt64)] {
        guard isLeader else {
            deadlines = [:]
            return []
        }
        var due: [(name: String, checkIns: UInt64)] = []
        var seen: Set<String> = []
        for heartbeat in heartbeats {
            seen.insert(heartbeat.name)
            // A check-in, or a changed interval, starts the period again.
            let period = heartbeat.spec.intervalMilliseconds + heartbeat.spec.graceMilliseconds
            if let deadline = deadlines[heartbeat.name], deadline.checkIns == heartbeat.checkIns, deadline.periodMilliseconds == period {
            } else {
                deadlines[heartbeat.name] = (heartbeat.checkIns, period, now + period)
            }
            if !heartbeat.alarmed, let deadline = deadlines[heartbeat.name], now >= deadline.dueAtMilliseconds {
                due.append((heartbeat.name, heartbeat.checkIns))
            }
        }
        deadlines = deadlines.filter { seen.contains($0.key) }
        return due
    }
}
