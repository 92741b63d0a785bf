import DequeModule

/// The replicated queue and dedup table: a deterministic state machine. `apply` takes a command
/// and returns its result plus the store writes that make the new state durable. The caller must
/// make those writes durable before it tells anyone about the result ("persist before ack").
public struct RelayStateMachine: Sendable {
    public struct Limits: Sendable, Equatable {
        /// Pending plus dead events. Past it, clients get 503 "Queue Full"; nothing accepted is
        /// ever dropped to make room.
        public var maxQueuedEvents: Int
        /// Remembered incident keys. Idle keys are forgotten oldest first past it.
        public var maxDedupKeys: Int
        /// A byte-identical event for the same key within this window is a client retry.
        public var duplicateWindowMilliseconds: Int64

        public init(maxQueuedEvents: Int = 100_000, maxDedupKeys: Int = 200_000, duplicateWindowMilliseconds: Int64 = 60_000) {
            self.maxQueuedEvents = maxQueuedEvents
            self.maxDedupKeys = maxDedupKeys
            self.duplicateWindowMilliseconds = duplicateWindowMilliseconds
        }

        /// Checked at startup: a dedup table smaller than the queue could not keep a key for
        /// every queued event.
        public func validate() throws(ConfigurationError) {
            guard maxQueuedEvents > 0 else { throw ConfigurationError("max_queued_events must be positive") }
            guard maxDedupKeys > maxQueuedEvents else {
                throw ConfigurationError(
                    "max_dedup_keys (\(maxDedupKeys)) must be larger than max_queued_events (\(maxQueuedEvents)): every queued event needs its key remembered"
                )
            }
            guard duplicateWindowMilliseconds >= 0 else {
                throw ConfigurationError("duplicate_window_milliseconds must not be negative")
            }
        }
    }

    /// Everything one `apply` asks of the shell.
    public struct Effects: Sendable {
        public var mutations: [StoreMutation] = []
        /// Keys whose first pending event may have changed: the delivery scheduler looks again.
        public var changedKeys: [OrderingKey] = []

        public init() {}
    }

    public let limits: Limits
    public private(set) var nextEventNumber: UInt64
    private var events: [UInt64: QueuedEvent] = [:]
    /// Pending event numbers per key, in acceptance order. Only the first may be in flight.
    private var queues: [OrderingKey: Deque<UInt64>] = [:]
    private var dedup: [OrderingKey: DedupEntry] = [:]
    /// Open delivery intents, at most one per key: a request of that term may be on its way.
    /// One outlives its event only if the event was purged while in flight; it goes when the key
    /// is forgotten, so there are never more than `maxDedupKeys`.
    private var intents: [OrderingKey: DeliveryIntent] = [:]
    /// Pending plus dead events per key: a key with live events is never forgotten.
    private var liveEventsPerKey: [OrderingKey: Int] = [:]
    /// Relay-assigned keys by fingerprint, so a retried keyless trigger gets its first key back.
    private var assignedKeyByFingerprint: [[UInt8]: OrderingKey] = [:]
    /// Keys in roughly least-recently-accepted order, for forgetting idle keys. Entries whose
    /// number no longer matches the dedup entry are stale and skipped.
    private var evictionOrder: Deque<(number: UInt64, key: OrderingKey)> = []
    public private(set) var pendingCount = 0
    public private(set) var deadCount = 0

    public init(limits: Limits) {
        self.limits = limits
        self.nextEventNumber = 1
    }

    /// Rebuilds the state from what the store holds.
    public init(
        limits: Limits, events: [QueuedEvent], dedupEntries: [DedupEntry], nextEventNumber: UInt64, intents: [DeliveryIntent] = []
    ) {
        self.init(limits: limits)
        self.nextEventNumber = nextEventNumber
        for entry in dedupEntries.sorted(by: { $0.lastNumber < $1.lastNumber }) {
            dedup[entry.key] = entry
            evictionOrder.append((entry.lastNumber, entry.key))
            if entry.keyWasAssigned { assignedKeyByFingerprint[entry.lastFingerprint] = entry.key }
        }
        for event in events.sorted(by: { $0.number < $1.number }) {
            precondition(event.number < nextEventNumber, "event \(event.number) is beyond the next event number")
            precondition(dedup[event.key] != nil, "event \(event.number) has no dedup entry")
            insert(event)
        }
        for intent in intents {
            precondition(dedup[intent.key] != nil, "the intent for event \(intent.eventNumber) has no dedup entry")
            self.intents[intent.key] = intent
        }
    }

    // MARK: queries

    public var queuedCount: Int { pendingCount + deadCount }

    public func event(number: UInt64) -> QueuedEvent? { events[number] }

    /// The event that must be delivered next for this key, if any.
    public func head(of key: OrderingKey) -> QueuedEvent? {
        queues[key]?.first.flatMap { events[$0] }
    }

    /// The event behind `number` on `key`, while `number` is first for it: the one that goes
    /// next once `number`'s delivery is recorded.
    public func event(following number: UInt64, of key: OrderingKey) -> QueuedEvent? {
        guard let queue = queues[key], queue.first == number, queue.count >= 2 else { return nil }
        return events[queue[queue.index(after: queue.startIndex)]]
    }

    /// Every key with a pending event: where delivery starts after a restart or a leader change.
    public var keysWithPendingEvents: [OrderingKey] { queues.keys.sorted() }

    public func events(matching filter: EventFilter, limit: Int) -> [QueuedEvent] {
        if let number = filter.eventNumber {
            return events[number].map { filter.matches($0) ? [$0] : [] } ?? []
        }
        return Array(events.values.filter(filter.matches).sorted { $0.number < $1.number }.prefix(limit))
    }

    public func dedupEntry(for key: OrderingKey) -> DedupEntry? { dedup[key] }

    /// The open delivery intent of `key`: a request from `term` may still be on its way upstream.
    public func openIntent(for key: OrderingKey) -> DeliveryIntent? { intents[key] }

    public var openIntentCount: Int { intents.count }

    public var dedupKeyCount: Int { dedup.count }

    /// The whole state, in the form the store and a snapshot hold it.
    public var contents: (events: [QueuedEvent], dedupEntries: [DedupEntry], nextEventNumber: UInt64, intents: [DeliveryIntent]) {
        (
            events.values.sorted { $0.number < $1.number }, dedup.values.sorted { $0.lastNumber < $1.lastNumber }, nextEventNumber,
            intents.values.sorted { $0.eventNumber < $1.eventNumber }
        )
    }

    // MARK: apply

    public mutating func apply(_ command: RelayCommand, effects: inout Effects) -> CommandResult {
        switch command {
        case .accept(let acceptance):
            return accept(acceptance, effects: &effects)
        case .recordAttempt(let number, let attempt):
            return record(attempt, for: number, effects: &effects)
        case .openIntent(let intent):
            return open(intent, effects: &effects)
        case .retryDead(let filter):
            return retryDead(filter, effects: &effects)
        case .purge(let filter):
            return purge(filter, effects: &effects)
        }
    }

    private mutating func accept(_ acceptance: Acceptance, effects: inout Effects) -> CommandResult {
        // A retried keyless event carries a freshly generated key; its fingerprint finds the
        // key it was first given.
        let retryKey =
            acceptance.keyWasAssigned ? assignedKeyByFingerprint[acceptance.fingerprint, default: acceptance.key] : acceptance.key
        if let entry = dedup[retryKey], entry.lastFingerprint == acceptance.fingerprint,
            acceptance.receivedAtMilliseconds - entry.lastAcceptedAtMilliseconds <= limits.duplicateWindowMilliseconds
        {
            // A retry does not extend the window, so a flood of identical events still gets one
            // through per window.
            return .duplicate(dedupKey: retryKey.dedupKey, eventNumber: entry.lastNumber)
        }
        let key = acceptance.key
        if let queue = queues[key], queue.count >= 2, let tailNumber = queue.last, var tail = events[tailNumber],
            tail.action == acceptance.action
        {
            // The tail is not the head, so it cannot be in flight: replacing it is invisible
            // upstream except that one redundant event is not sent.
            tail.body = acceptance.body
            tail.fingerprint = acceptance.fingerprint
            tail.receivedAtMilliseconds = acceptance.receivedAtMilliseconds
            events[tailNumber] = tail
            effects.mutations.append(.putEvent(tail))
            remember(acceptance, number: tailNumber, effects: &effects)
            return .coalesced(dedupKey: key.dedupKey, eventNumber: tailNumber)
        }
        guard queuedCount < limits.maxQueuedEvents else { return .queueFull }
        let number = nextEventNumber
        nextEventNumber += 1
        let event = QueuedEvent(
            number: number, kind: acceptance.kind, action: acceptance.action, key: key, body: acceptance.body,
            fingerprint: acceptance.fingerprint, receivedAtMilliseconds: acceptance.receivedAtMilliseconds)
        remember(acceptance, number: number, effects: &effects)
        insert(event)
        effects.mutations.append(.putEvent(event))
        effects.mutations.append(.setNextEventNumber(nextEventNumber))
        if queues[key]?.count == 1 { effects.changedKeys.append(key) }
        forgetIdleKeys(effects: &effects)
        return .accepted(dedupKey: key.dedupKey, eventNumber: number)
    }

    private mutating func remember(_ acceptance: Acceptance, number: UInt64, effects: inout Effects) {
        let key = acceptance.key
        if let previous = dedup[key], previous.keyWasAssigned {
            assignedKeyByFingerprint.removeValue(forKey: previous.lastFingerprint)
        }
        let isNewNumber = dedup[key]?.lastNumber != number
        let entry = DedupEntry(
            key: key, lastNumber: number, lastAction: acceptance.action, lastFingerprint: acceptance.fingerprint,
            lastAcceptedAtMilliseconds: acceptance.receivedAtMilliseconds,
            keyWasAssigned: dedup[key]?.keyWasAssigned ?? acceptance.keyWasAssigned)
        dedup[key] = entry
        if entry.keyWasAssigned { assignedKeyByFingerprint[entry.lastFingerprint] = key }
        if isNewNumber { evictionOrder.append((number, key)) }
        effects.mutations.append(.putDedup(entry))
    }

    private mutating func open(_ intent: DeliveryIntent, effects: inout Effects) -> CommandResult {
        guard let event = events[intent.eventNumber], event.state == .pending, queues[event.key]?.first == intent.eventNumber else {
            return .eventGone
        }
        precondition(event.key == intent.key, "the intent for event \(intent.eventNumber) names another key")
        // A newer term's intent replaces an older one: the newer leader has waited out the older
        // request's deadline before opening it.
        intents[intent.key] = intent
        effects.mutations.append(.putIntent(intent))
        return .intentOpened
    }

    /// The attempt's outcome is known, so its request is over: the key's intent closes.
    private mutating func closeIntent(of number: UInt64, key: OrderingKey?, effects: inout Effects) {
        let key = key ?? intents.first { $0.value.eventNumber == number }?.key
        guard let key, intents[key]?.eventNumber == number else { return }
        intents[key] = nil
        effects.mutations.append(.deleteIntent(key))
    }

    private mutating func record(_ attempt: AttemptRecord, for number: UInt64, effects: inout Effects) -> CommandResult {
        closeIntent(of: number, key: events[number]?.key, effects: &effects)
        guard var event = events[number], event.state == .pending else { return .eventGone }
        precondition(queues[event.key]?.first == number, "an attempt was made on event \(number), which is not first for its key")
        event.attempts += 1
        effects.mutations.append(.appendAttempt(eventNumber: number, attempt))
        switch attempt.outcome {
        case .delivered:
            remove(number)
            effects.mutations.append(.deleteEvent(number))
            effects.changedKeys.append(event.key)
        case .retry:
            event.lastError = attempt.detail
            events[number] = event
            effects.mutations.append(.putEvent(event))
        case .deadLettered:
            event.lastError = attempt.detail
            event.state = .dead
            events[number] = event
            queues[event.key]?.removeFirst()
            if queues[event.key]?.isEmpty == true { queues[event.key] = nil }
            pendingCount -= 1
            deadCount += 1
            effects.mutations.append(.putEvent(event))
            effects.changedKeys.append(event.key)
        }
        return .attemptRecorded
    }

    private mutating func retryDead(_ filter: EventFilter, effects: inout Effects) -> CommandResult {
        var retried = 0
        var superseded = 0
        var filter = filter
        filter.states = [.dead]
        for var event in events(matching: filter, limit: .max) {
            // A later event for the key was accepted: sending this one now could re-open an
            // incident that was since resolved.
            guard dedup[event.key]?.lastNumber == event.number else {
                superseded += 1
                continue
            }
            precondition(queues[event.key] == nil, "the newest event of \(event.key) is dead but the key has pending events")
            event.state = .pending
            event.attempts = 0
            event.lastError = nil
            events[event.number] = event
            queues[event.key] = [event.number]
            deadCount -= 1
            pendingCount += 1
            effects.mutations.append(.putEvent(event))
            effects.changedKeys.append(event.key)
            retried += 1
        }
        return .retried(count: retried, superseded: superseded)
    }

    private mutating func purge(_ filter: EventFilter, effects: inout Effects) -> CommandResult {
        let doomed = events(matching: filter, limit: .max)
        for event in doomed {
            let wasHead = queues[event.key]?.first == event.number
            remove(event.number)
            effects.mutations.append(.deleteEvent(event.number))
            if wasHead { effects.changedKeys.append(event.key) }
        }
        return .purged(count: doomed.count)
    }

    // MARK: bookkeeping

    private mutating func insert(_ event: QueuedEvent) {
        events[event.number] = event
        liveEventsPerKey[event.key, default: 0] += 1
        switch event.state {
        case .pending:
            queues[event.key, default: []].append(event.number)
            pendingCount += 1
        case .dead:
            deadCount += 1
        }
    }

    private mutating func remove(_ number: UInt64) {
        guard let event = events.removeValue(forKey: number) else { return }
        liveEventsPerKey[event.key]! -= 1
        if liveEventsPerKey[event.key] == 0 { liveEventsPerKey[event.key] = nil }
        switch event.state {
        case .pending:
            queues[event.key]?.removeAll { $0 == number }
            if queues[event.key]?.isEmpty == true { queues[event.key] = nil }
            pendingCount -= 1
        case .dead:
            deadCount -= 1
        }
        precondition(pendingCount >= 0 && deadCount >= 0, "queue counts went negative")
    }

    /// Forgets the least recently used idle keys beyond the limit. A key with a queued event is
    /// never forgotten; `Limits.validate` guarantees an idle one exists.
    private mutating func forgetIdleKeys(effects: inout Effects) {
        var busy: [(number: UInt64, key: OrderingKey)] = []
        while dedup.count > limits.maxDedupKeys, let (number, key) = evictionOrder.popFirst() {
            guard let entry = dedup[key], entry.lastNumber == number else { continue }
            if liveEventsPerKey[key] != nil {
                busy.append((number, key))
                continue
            }
            dedup[key] = nil
            if intents.removeValue(forKey: key) != nil { effects.mutations.append(.deleteIntent(key)) }
            if entry.keyWasAssigned, assignedKeyByFingerprint[entry.lastFingerprint] == key {
                assignedKeyByFingerprint[entry.lastFingerprint] = nil
            }
            effects.mutations.append(.deleteDedup(key))
        }
        evictionOrder.append(contentsOf: busy)
        precondition(dedup.count <= limits.maxDedupKeys, "the dedup table is over its limit with no idle key to forget")
        if evictionOrder.count > 2 * dedup.count + 1024 {
            evictionOrder = Deque(dedup.values.sorted { $0.lastNumber < $1.lastNumber }.map { ($0.lastNumber, $0.key) })
        }
    }
}
