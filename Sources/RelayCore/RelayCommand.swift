/// A client's event, validated, with everything the proposer had to decide already decided, so
/// that applying it is deterministic on every node.
public struct Acceptance: Sendable, Equatable {
    public let kind: EventKind
    public let action: EventAction
    /// The client's key, or the one the proposer generated for it (`keyWasAssigned`).
    public let key: OrderingKey
    public let keyWasAssigned: Bool
    public let body: [UInt8]
    public let fingerprint: [UInt8]
    public let receivedAtMilliseconds: Int64
    /// What the incident's folder records, and repeats are compared by. Nil for an acknowledge
    /// or resolve, and for a command logged before folders existed.
    public let facts: IncidentFacts?

    public init(
        kind: EventKind, action: EventAction, key: OrderingKey, keyWasAssigned: Bool, body: [UInt8],
        fingerprint: [UInt8], receivedAtMilliseconds: Int64, facts: IncidentFacts? = nil
    ) {
        self.facts = facts
        self.kind = kind
        self.action = action
        self.key = key
        self.keyWasAssigned = keyWasAssigned
        self.body = body
        self.fingerprint = fingerprint
        self.receivedAtMilliseconds = receivedAtMilliseconds
    }

    /// Builds the acceptance for a validated event. A trigger without a dedup_key gets one from
    /// its routing key's template when that renders, which then goes upstream as if the client
    /// had sent it; otherwise `assignedKey` is asked for.
    public init(
        _ event: ValidatedEvent, templates: DedupKeyTemplates = DedupKeyTemplates(), assignedKey: @autoclosure () -> String,
        receivedAtMilliseconds: Int64
    ) {
        let templated =
            event.dedupKey == nil && event.action == .trigger ? templates.template(for: event.routingKey)?.render(event) : nil
        let dedupKey = event.dedupKey ?? templated ?? assignedKey()
        self.init(
            kind: event.api.kind, action: event.action,
            key: OrderingKey(routingKey: event.routingKey, dedupKey: dedupKey),
            keyWasAssigned: event.dedupKey == nil && templated == nil, body: event.upstreamBody(assignedDedupKey: dedupKey),
            fingerprint: event.fingerprint, receivedAtMilliseconds: receivedAtMilliseconds, facts: event.incidentFacts)
    }
}

/// The inputs of the replicated state machine. Every node applies the same commands in the same
/// order and so holds the same queue and dedup table.
public enum RelayCommand: Sendable, Equatable {
    case accept(Acceptance)
    /// The leader's record of one delivery attempt: delivered, to retry, or dead-lettered.
    case recordAttempt(eventNumber: UInt64, AttemptRecord)
    /// The leader's intent to send an event now (see `DeliveryIntent`); the outcome's
    /// `recordAttempt` closes it.
    case openIntent(DeliveryIntent)
    /// A client's event from a leader that may send it at once (its key had nothing pending and
    /// a delivery slot was free when proposed): if it is queued first for its key and no intent
    /// is open on the key, the intent of `term`'s first attempt on it opens in the same entry,
    /// so a new incident's event costs one commit round less before it is sent. The result is
    /// the acceptance's.
    case acceptAndOpenIntent(Acceptance, term: UInt64)
    /// An attempt's outcome and the key's next event's intent, in one entry: the intent is
    /// applied after the outcome, as `openIntent` would be in the entry behind it. The result
    /// is the outcome's.
    case recordAttemptAndOpenIntent(eventNumber: UInt64, AttemptRecord, next: DeliveryIntent)
    /// Operator: dead letters back to pending.
    case retryDead(EventFilter)
    /// Operator: forget events.
    case purge(EventFilter)
    /// Operator: a maintenance window. Times are the proposer's wall clock.
    case openWindow(MaintenanceWindow.Spec, atMilliseconds: Int64)
    case changeWindow(id: UInt64, MaintenanceWindow.Change, atMilliseconds: Int64)
    /// Operator: ends a window now and releases what it held.
    case endWindow(id: UInt64, atMilliseconds: Int64)
    /// The leader's: windows that ended by then release their held events.
    case releaseWindows(atMilliseconds: Int64)
    /// Operator: creates or changes a heartbeat.
    case putHeartbeat(name: String, Heartbeat.Spec, atMilliseconds: Int64)
    /// A monitored source: authorised by the routing key it carries; resolves an open alarm.
    case checkIn(name: String, routingKey: String, intervalMilliseconds: Int64?, atMilliseconds: Int64)
    /// Operator: removes a heartbeat, resolving its alarm if one is open.
    case deleteHeartbeat(name: String, atMilliseconds: Int64)
    /// The leader's timer ran out (`HeartbeatWatch`): triggers the alarm, unless a check-in
    /// was applied since the count the timer saw.
    case heartbeatMissed(name: String, checkIns: UInt64, atMilliseconds: Int64)
    /// The leader's: digests whose interval has passed by then go out, one event each.
    case flushDigests(atMilliseconds: Int64)
    /// Operator (`pdrelay drill`): what a failover rehearsal measured; its id is assigned here.
    case recordDrill(DrillRecord)
    /// A PagerDuty v3 webhook about the incident with `dedupKey` (under any routing key).
    case applyWebhook(dedupKey: String, PagerDutyView)
}

public enum CommandResult: Sendable, Equatable {
    /// A new event, queued.
    case accepted(dedupKey: String, eventNumber: UInt64)
    /// The same bytes as the newest event for this key, within the duplicate window: a client
    /// retry. Nothing new is queued.
    case duplicate(dedupKey: String, eventNumber: UInt64)
    /// Replaced a queued, not yet started event of the same action for this key.
    case coalesced(dedupKey: String, eventNumber: UInt64)
    /// A trigger that repeats the open incident's last forwarded one, within the repeat
    /// interval: recorded in its folder, not queued.
    case repeatSuppressed(dedupKey: String)
    /// Received inside a maintenance window: recorded in its folder, never delivered.
    case suppressedByMaintenance(dedupKey: String, windowID: UInt64)
    /// Received inside a maintenance window with `hold`: kept, delivered after the window.
    case held(dedupKey: String, windowID: UInt64)
    case windowSaved(MaintenanceWindow)
    case windowEnded(MaintenanceWindow, released: Int)
    case windowRefused(OperatorError)
    case windowsReleased(count: Int)
    case heartbeatSaved(Heartbeat)
    case heartbeatRefused(OperatorError)
    /// A check-in or a miss was applied; `Heartbeat.alarmed` says what it did.
    case heartbeatUpdated(Heartbeat)
    case heartbeatDeleted(Heartbeat)
    /// A low-priority trigger, counted in its routing key's next digest.
    case digested(dedupKey: String)
    case digestsFlushed(count: Int)
    case drillRecorded(DrillRecord)
    case drillRefused(OperatorError)
    /// The folders the webhook changed (0 when the relay keeps none for its dedup_key), and
    /// why it left others alone.
    case webhookApplied(folders: Int, refusals: [String])
    /// The queue is at its limit; nothing was queued and the client must retry later.
    case queueFull
    case attemptRecorded
    /// The intent is committed: the leader may send, while its lease holds.
    case intentOpened
    /// An attempt for an event that is gone (purged while in flight).
    case eventGone
    case retried(count: Int, superseded: Int)
    case purged(count: Int)
}

/// Writes the store must make, in order, for the state to survive a restart.
public enum StoreMutation: Sendable, Equatable {
    case putEvent(QueuedEvent)
    case deleteEvent(UInt64)
    case putDedup(DedupEntry)
    case deleteDedup(OrderingKey)
    case appendAttempt(eventNumber: UInt64, AttemptRecord)
    case setNextEventNumber(UInt64)
    case putIntent(DeliveryIntent)
    case deleteIntent(OrderingKey)
    case putFolder(IncidentFolder)
    case deleteFolder(OrderingKey)
    case putWindow(MaintenanceWindow)
    case deleteWindow(UInt64)
    case setNextWindowID(UInt64)
    case putHeld(HeldEvent)
    case deleteHeld(windowID: UInt64, sequence: UInt64)
    case putHeartbeat(Heartbeat)
    case deleteHeartbeat(String)
    case putDigest(Digest)
    case deleteDigest(routingKey: String)
    case putDrill(DrillRecord)
    case deleteDrill(id: UInt64)
}
