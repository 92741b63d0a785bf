/// Which PagerDuty API an event came in through and goes out to.
public enum EventKind: String, Sendable, Codable, CaseIterable {
    /// Events API v2 `/v2/enqueue` (and v1 events, translated to v2 on the way in).
    case alert
    /// Events API v2 `/v2/change/enqueue`.
    case change

    /// The path on the upstream that receives this kind.
    public var upstreamPath: String {
        switch self {
        case .alert: "/v2/enqueue"
        case .change: "/v2/change/enqueue"
        }
    }
}

public enum EventAction: String, Sendable, Codable, CaseIterable {
    case trigger
    case acknowledge
    case resolve
    /// A change event has no action; it is recorded, never opens an incident.
    case change
}
