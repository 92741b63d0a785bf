/// Selects events for operator commands. Empty fields match everything.
public struct EventFilter: Sendable, Equatable, Codable {
    public var routingKey: String?
    public var dedupKey: String?
    public var eventNumber: UInt64?
    public var states: Set<QueuedEvent.State>

    public init(
        routingKey: String? = nil, dedupKey: String? = nil, eventNumber: UInt64? = nil,
        states: Set<QueuedEvent.State> = Set(QueuedEvent.State.allCases)
    ) {
        self.routingKey = routingKey
        self.dedupKey = dedupKey
        self.eventNumber = eventNumber
        self.states = states
    }

    enum CodingKeys: String, CodingKey {
        case routingKey = "routing_key"
        case dedupKey = "dedup_key"
        case eventNumber = "event_number"
        case states
    }

    /// Missing fields match everything, so `{}` selects the whole queue.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        routingKey = try container.decodeIfPresent(String.self, forKey: .routingKey)
        dedupKey = try container.decodeIfPresent(String.self, forKey: .dedupKey)
        eventNumber = try container.decodeIfPresent(UInt64.self, forKey: .eventNumber)
        states = try container.decodeIfPresent(Set<QueuedEvent.State>.self, forKey: .states) ?? Set(QueuedEvent.State.allCases)
    }

    public func matches(_ event: QueuedEvent) -> Bool {
        states.contains(event.state) && (routingKey.map { $0 == event.key.routingKey } ?? true)
            && (dedupKey.map { $0 == event.key.dedupKey } ?? true) && (eventNumber.map { $0 == event.number } ?? true)
    }
}
