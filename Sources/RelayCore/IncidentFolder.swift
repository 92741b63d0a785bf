/// Everything the relay knows about one incident, (routing_key, dedup_key): its lifecycle, when
/// it was first and last seen, how many events of each action it got, and a bounded history of
/// them with what became of each. It is the answer to "what happened to this fault?" at 3 a.m.,
/// and the memory that repeat suppression and maintenance windows decide by.
public struct IncidentFolder: Sendable, Equatable {
    /// PagerDuty's incident lifecycle, as the events the relay accepted describe it.
    public enum State: String, Sendable, Codable, CaseIterable {
        /// Triggered and not yet acknowledged or resolved.
        case open
        case acknowledged
        case resolved
    }

    /// What became of one event the folder recorded.
    public enum Outcome: String, Sendable, Codable, CaseIterable {
        /// Queued for delivery; not delivered yet.
        case queued
        /// Never stored: a `queued` entry whose event has left the queue reads as delivered.
        case delivered
        case deadLettered = "dead_lettered"
        /// A repeat of the trigger already forwarded, within the repeat interval: not forwarded.
        case repeatSuppressed = "repeat_suppressed"
        /// Replaced in the queue by a later event of the same action before it was sent.
        case replaced
        /// Removed from the queue by an operator.
        case purged
        /// Received inside a maintenance window: never delivered.
        case maintenanceSuppressed = "maintenance_suppressed"
        /// Kept by a maintenance window with `hold` until it ends.
        case held
        /// Held, then made stale by a resolve that went through: never delivered.
        case superseded
        /// Low priority: counted in its routing key's next digest, not sent alone.
        case digested
    }

    public struct Counts: Sendable, Equatable, Codable {
        public var triggers = 0
        public var acknowledges = 0
        public var resolves = 0
        /// Triggers recorded but not forwarded because they repeated the open incident's last one.
        public var repeatsSuppressed = 0
        /// Events received inside a maintenance window, not delivered.
        public var maintenanceSuppressed = 0
        /// Events a maintenance window held for delivery after it.
        public var held = 0
        /// Low-priority events summarised in a digest instead of sent alone.
        public var digested = 0

        public init() {}
    }

    /// One event in the folder's history.
    public struct Entry: Sendable, Equatable {
        /// The queued event's number; nil for an event that was never queued (a suppressed repeat).
        public var eventNumber: UInt64?
        public var action: EventAction
        public var severity: Severity?
        /// The event's summary, cut to `maxEntrySummaryCharacters`.
        public var summary: String
        public var receivedAtMilliseconds: Int64
        public var outcome: Outcome

        public init(
            eventNumber: UInt64?, action: EventAction, severity: Severity?, summary: String, receivedAtMilliseconds: Int64,
            outcome: Outcome
        ) {
            self.eventNumber = eventNumber
            self.action = action
            self.severity = severity
            self.summary = String(summary.prefix(IncidentFolder.maxEntrySummaryCharacters))
            self.receivedAtMilliseconds = receivedAtMilliseconds
            self.outcome = outcome
        }
    }

    /// The trigger PagerDuty last got (or will get) for this incident: what a repeat is
    /// compared with.
    public struct ForwardedTrigger: Sendable, Equatable {
        public var eventNumber: UInt64
        public var severity: Severity?
        public var summary: String
        public var receivedAtMilliseconds: Int64

        public init(eventNumber: UInt64, severity: Severity?, summary: String, receivedAtMilliseconds: Int64) {
            self.eventNumber = eventNumber
            self.severity = severity
            self.summary = summary
            self.receivedAtMilliseconds = receivedAtMilliseconds
        }
    }

    /// History entries kept per folder. A fault that flaps all night keeps its latest
    /// progression; `droppedEntries` says how much came before.
    public static let maxHistoryEntries = 32
    /// A history entry's summary is cut here, so a folder stays under about 10 KB however long
    /// the summaries (PagerDuty allows 1,024 characters).
    public static let maxEntrySummaryCharacters = 256

    public let key: OrderingKey
    public var state: State
    /// The source of the newest event that named one.
    public var source: String
    /// The newest trigger's summary and severity, whatever became of it.
    public var summary: String
    public var severity: Severity?
    public var firstSeenAtMilliseconds: Int64
    public var lastSeenAtMilliseconds: Int64
    public var counts: Counts
    public var lastForwardedTrigger: ForwardedTrigger?
    /// Oldest first, at most `maxHistoryEntries`.
    public private(set) var history: [Entry]
    /// Entries dropped from the front of `history` to keep it bounded.
    public private(set) var droppedEntries: Int
    /// The replicated order of the folder's last change: newer is larger. Lists are newest
    /// first by it, and the least recently changed folder is forgotten first.
    public var sequence: UInt64
    /// What PagerDuty's webhooks last said of the incident, if any came.
    public var pagerDuty: PagerDutyView?

    public init(
        key: OrderingKey, state: State, source: String, summary: String = "", severity: Severity? = nil,
        firstSeenAtMilliseconds: Int64, lastSeenAtMilliseconds: Int64, counts: Counts = Counts(),
        lastForwardedTrigger: ForwardedTrigger? = nil, history: [Entry] = [], droppedEntries: Int = 0,
        sequence: UInt64, pagerDuty: PagerDutyView? = nil
    ) {
        precondition(history.count <= Self.maxHistoryEntries, "a folder holds at most \(Self.maxHistoryEntries) history entries")
        self.key = key
        self.state = state
        self.source = source
        self.summary = summary
        self.severity = severity
        self.firstSeenAtMilliseconds = firstSeenAtMilliseconds
        self.lastSeenAtMilliseconds = lastSeenAtMilliseconds
        self.counts = counts
        self.lastForwardedTrigger = lastForwardedTrigger
        self.history = history
        self.droppedEntries = droppedEntries
        self.sequence = sequence
        self.pagerDuty = pagerDuty
    }

    /// Appends to the history, dropping its oldest entry when full.
    public mutating func append(_ entry: Entry) {
        if history.count == Self.maxHistoryEntries {
            history.removeFirst()
            droppedEntries += 1
        }
        history.append(entry)
    }

    /// Sets the outcome of queued event `number`. Returns false if the folder no longer holds
    /// that event's entry (dropped from the history, or never recorded).
    /// A trigger that never reached PagerDuty (dead-lettered or purged) is no longer the one a
    /// repeat is compared with, so the next trigger is forwarded.
    @discardableResult
    public mutating func settle(eventNumber number: UInt64, as outcome: Outcome, from previous: Outcome = .queued) -> Bool {
        if outcome != .delivered, lastForwardedTrigger?.eventNumber == number { lastForwardedTrigger = nil }
        guard let index = history.lastIndex(where: { $0.eventNumber == number && $0.outcome == previous }) else { return false }
        history[index].outcome = outcome
        return true
    }

    /// Marks `queued` entries whose event `hasLeftTheQueue` as delivered.
    public mutating func markDelivered(where hasLeftTheQueue: (UInt64) -> Bool) {
        for index in history.indices where history[index].outcome == .queued {
            if let number = history[index].eventNumber, hasLeftTheQueue(number) { history[index].outcome = .delivered }
        }
    }

    /// Gives the oldest held entry what became of it when its window released it. Returns false
    /// if the history no longer holds it.
    public mutating func releaseHeld(as outcome: Outcome, eventNumber: UInt64?) -> Bool {
        guard let index = history.firstIndex(where: { $0.outcome == .held }) else { return false }
        history[index].outcome = outcome
        history[index].eventNumber = eventNumber
        return true
    }

    /// Why a webhook does not apply to this folder, or nil when it does. A retry of the webhook
    /// last applied is a duplicate; one older than the last applied, or than the trigger last
    /// forwarded, speaks of an earlier state or an earlier incident (PagerDuty's clock and the
    /// relay's may differ by the skew `/v1/cluster` reports).
    public func refusal(of view: PagerDutyView) -> String? {
        if let last = pagerDuty {
            if last.webhookID == view.webhookID { return "duplicate" }
            if view.occurredAtMilliseconds < last.occurredAtMilliseconds { return "older than the last webhook applied" }
        }
        if view.status != .triggered, let trigger = lastForwardedTrigger, view.occurredAtMilliseconds < trigger.receivedAtMilliseconds {
            return "older than the last trigger forwarded"
        }
        return nil
    }

    /// Takes what PagerDuty said: the lifecycle follows it, and once resolved there is no
    /// forwarded trigger for a repeat to match.
    public mutating func apply(_ view: PagerDutyView) {
        precondition(refusal(of: view) == nil, "a webhook applied to a folder that refuses it")
        pagerDuty = view
        state = view.folderState
        if view.status == .resolved { lastForwardedTrigger = nil }
    }

    /// The lifecycle after `action`. An acknowledge of a resolved incident changes nothing, as in
    /// PagerDuty; a trigger re-opens it.
    public static func state(after action: EventAction, from state: State?) -> State? {
        switch action {
        case .trigger: .open
        case .acknowledge: state == .resolved ? .resolved : .acknowledged
        case .resolve: .resolved
        case .change: state
        }
    }
}
