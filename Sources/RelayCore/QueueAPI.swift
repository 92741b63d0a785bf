/// The wire types of the node's queue API (`/v1/queue/...`), shared by the node and the
/// `pdrelay queue` client. Routing keys in them are always masked.

/// `pdrelay queue status`: counts per state and per masked routing key.
public struct QueueStatus: Codable, Sendable, Equatable {
    public struct RoutingKeyCounts: Codable, Sendable, Equatable {
        public var routingKey: String
        public var pending = 0
        public var dead = 0
        /// Incidents waiting for a slot of this routing key's delivery budget; nil unless this
        /// node leads (budgets are the leader's own).
        public var waitingForSlot: Int?
        /// The budget's slot now, longer than a minute divided by the budget for a while after a
        /// 429; nil unless this node leads, or when the routing key has no budget.
        public var slotMilliseconds: Int64?

        public init(routingKey: String) { self.routingKey = routingKey }
    }

    public var pending: Int
    public var dead: Int
    public var inFlight: Int
    public var dedupKeys: Int
    public var maxQueuedEvents: Int
    public var routingKeys: [RoutingKeyCounts]

    public init(pending: Int, dead: Int, inFlight: Int, dedupKeys: Int, maxQueuedEvents: Int, routingKeys: [RoutingKeyCounts]) {
        self.pending = pending
        self.dead = dead
        self.inFlight = inFlight
        self.dedupKeys = dedupKeys
        self.maxQueuedEvents = maxQueuedEvents
        self.routingKeys = routingKeys
    }
}

/// One queued event as `pdrelay queue list` shows it.
public struct EventSummary: Codable, Sendable, Equatable {
    public var number: UInt64
    public var kind: EventKind
    public var action: EventAction
    public var routingKey: String
    public var dedupKey: String
    public var state: QueuedEvent.State
    public var attempts: Int
    public var receivedAtMilliseconds: Int64
    public var lastError: String?

    public init(_ event: QueuedEvent) {
        number = event.number
        kind = event.kind
        action = event.action
        routingKey = RoutingKeyMask.mask(event.key.routingKey)
        dedupKey = event.key.dedupKey
        state = event.state
        attempts = event.attempts
        receivedAtMilliseconds = event.receivedAtMilliseconds
        lastError = event.lastError
    }
}

/// `pdrelay queue show`: the event, its body as it will go upstream (routing key masked), and
/// its attempt history.
public struct EventDetail: Codable, Sendable, Equatable {
    public var event: EventSummary
    public var body: JSONValue?
    public var attempts: [AttemptRecord]

    public init(_ event: QueuedEvent, attempts: [AttemptRecord]) {
        self.event = EventSummary(event)
        var body = try? JSONValue.parse(event.body)
        if case .object(var fields) = body, let key = fields["routing_key"]?.stringValue {
            fields["routing_key"] = .string(RoutingKeyMask.mask(key))
            body = .object(fields)
        }
        self.body = body
        self.attempts = attempts
    }
}

/// The answer to `retry` and `purge`.
public struct QueueCommandOutcome: Codable, Sendable, Equatable {
    public var retried: Int?
    public var superseded: Int?
    public var purged: Int?

    public init(retried: Int? = nil, superseded: Int? = nil, purged: Int? = nil) {
        self.retried = retried
        self.superseded = superseded
        self.purged = purged
    }
}
