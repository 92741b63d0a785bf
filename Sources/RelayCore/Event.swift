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

/// Events with the same ordering key are delivered one at a time, in acceptance order. For alert
/// events it is PagerDuty's own incident identity: (routing_key, dedup_key). Change events have
/// no order among themselves, so each gets a key of its own.
public struct OrderingKey: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let routingKey: String
    public let dedupKey: String

    public init(routingKey: String, dedupKey: String) {
        self.routingKey = routingKey
        self.dedupKey = dedupKey
    }

    public static func < (lhs: OrderingKey, rhs: OrderingKey) -> Bool {
        (lhs.routingKey, lhs.dedupKey) < (rhs.routingKey, rhs.dedupKey)
    }

    /// Safe to log: the routing key is masked.
    public var description: String { "\(RoutingKeyMask.mask(routingKey))/\(dedupKey)" }
}

/// Routing keys are credentials: anyone holding one can open incidents. They never appear in
/// logs, metrics or CLI output in full.
public enum RoutingKeyMask {
    public static func mask(_ routingKey: String) -> String {
        guard routingKey.count > 8 else { return String(repeating: "*", count: routingKey.count) }
        return "\(routingKey.prefix(2))…\(routingKey.suffix(4))"
    }
}
