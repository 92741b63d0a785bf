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
