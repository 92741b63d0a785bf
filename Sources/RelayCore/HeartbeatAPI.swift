/// A heartbeat as `/v1/heartbeats` shows it.
public struct HeartbeatView: Codable, Sendable, Equatable {
    public enum State: String, Codable, Sendable {
        /// Never checked in yet.
        case waiting
        /// Checked in, no alarm open.
        case up
        /// A missed-check-in incident is open.
        case missed
    }

    public var name: String
    public var state: State
    /// Masked, like every routing key the relay shows.
    public var routingKey: String
    public var intervalSeconds: Int64
    public var graceSeconds: Int64
    public var severity: String
    public var source: String
    public var dedupKey: String
    /// RFC 3339, by the clock of the node that took the check-in.
    public var lastCheckIn: String?
    public var checkIns: UInt64
    public var alarms: Int

    public init(_ heartbeat: Heartbeat) {
        name = heartbeat.name
        state = heartbeat.alarmed ? .missed : heartbeat.checkIns == 0 ? .waiting : .up
        routingKey = RoutingKeyMask.mask(heartbeat.spec.routingKey)
        intervalSeconds = heartbeat.spec.intervalMilliseconds / 1_000
        graceSeconds = heartbeat.spec.graceMilliseconds / 1_000
        severity = heartbeat.spec.severity.rawValue
        source = heartbeat.spec.source
        dedupKey = heartbeat.dedupKey
        lastCheckIn = heartbeat.lastCheckInAtMilliseconds.map(MaintenanceWindowView.rfc3339)
        checkIns = heartbeat.checkIns
        alarms = heartbeat.alarms
    }
}

/// `GET /v1/heartbeats`.
public struct HeartbeatList: Codable, Sendable, Equatable {
    public var heartbeats: [HeartbeatView]
    public init(heartbeats: [HeartbeatView]) { self.heartbeats = heartbeats }
}
