/// `GET /v1/incidents`: one folder in a list, without its history.
public struct IncidentSummary: Codable, Sendable, Equatable {
    /// Masked, like every routing key the relay shows.
    public var routingKey: String
    public var dedupKey: String
    public var state: IncidentFolder.State
    public var source: String
    public var firstSeenAtMilliseconds: Int64
    public var lastSeenAtMilliseconds: Int64
    public var counts: IncidentFolder.Counts
    /// The newest trigger's summary and severity.
    public var summary: String
    public var severity: String?
    /// What PagerDuty's webhooks last said: `{"status": "acknowledged", "by": "…", …}`.
    public var pagerDuty: PagerDutyState?

    public struct PagerDutyState: Codable, Sendable, Equatable {
        public var status: String
        public var by: String?
        public var occurredAtMilliseconds: Int64
        public var incidentID: String
        public var webhookID: String
    }

    public init(_ folder: IncidentFolder) {
        routingKey = RoutingKeyMask.mask(folder.key.routingKey)
        dedupKey = folder.key.dedupKey
        state = folder.state
        source = folder.source
        firstSeenAtMilliseconds = folder.firstSeenAtMilliseconds
        lastSeenAtMilliseconds = folder.lastSeenAtMilliseconds
        counts = folder.counts
        summary = folder.summary
        severity = folder.severity?.rawValue
        pagerDuty = folder.pagerDuty.map {
            PagerDutyState(
                status: $0.status.rawValue, by: $0.by, occurredAtMilliseconds: $0.occurredAtMilliseconds, incidentID: $0.incidentID,
                webhookID: $0.webhookID)
        }
    }
}

/// A page of `GET /v1/incidents`, most recently changed first. `nextCursor` goes back as
/// `?cursor=` for the next page; nil on the last one.
public struct IncidentPage: Codable, Sendable, Equatable {
    public var incidents: [IncidentSummary]
    public var nextCursor: String?

    public init(incidents: [IncidentSummary], nextCursor: String?) {
        self.incidents = incidents
        self.nextCursor = nextCursor
    }
}

/// `GET /v1/incidents/{dedup_key}`: the folder with the progression of the fault, oldest first.
public struct IncidentDetail: Codable, Sendable, Equatable {
    public struct Entry: Codable, Sendable, Equatable {
        public var eventNumber: UInt64?
        public var action: EventAction
        public var severity: String?
        public var summary: String
        public var receivedAtMilliseconds: Int64
        public var outcome: IncidentFolder.Outcome
    }

    public var incident: IncidentSummary
    public var history: [Entry]
    /// Older entries dropped to keep the history bounded.
    public var droppedEntries: Int

    public init(_ folder: IncidentFolder) {
        incident = IncidentSummary(folder)
        history = folder.history.map {
            Entry(
                eventNumber: $0.eventNumber, action: $0.action, severity: $0.severity?.rawValue, summary: $0.summary,
                receivedAtMilliseconds: $0.receivedAtMilliseconds, outcome: $0.outcome)
        }
        droppedEntries = folder.droppedEntries
    }
}
