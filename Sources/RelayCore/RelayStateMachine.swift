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
        /// Incident folders kept. The least recently changed is forgotten first past it; a
        /// forgotten folder only means a later repeat is forwarded once more.
        public var maxIncidentFolders: Int
        /// A trigger for an open incident with the same severity and summary as the last one
        /// forwarded, within this long of it, is recorded but not forwarded. 0 forwards every one.
        public var repeatIntervalMilliseconds: Int64

        /// Folders are up to about 10 KB each (`IncidentFolder.maxHistoryEntries`), so a million
        /// of them could take 10 GB of memory and snapshot.
        public static let maxIncidentFoldersLimit = 1_000_000
        /// A day: a repeat suppressed for longer would hide that a fault is still there from
        /// anyone who looks at PagerDuty's alert log.
        public static let maxRepeatIntervalMilliseconds: Int64 = 86_400_000
        /// Routing keys whose low-priority triggers go out as periodic digests.
        public var digestRules: DigestRules

        public init(
            maxQueuedEvents: Int = 100_000, maxDedupKeys: Int = 200_000, duplicateWindowMilliseconds: Int64 = 60_000,
            maxIncidentFolders: Int = 10_000, repeatIntervalMilliseconds: Int64 = 300_000, digestRules: DigestRules = DigestRules()
        ) {
            self.digestRules = digestRules
            self.maxQueuedEvents = maxQueuedEvents
            self.maxDedupKeys = maxDedupKeys
            self.duplicateWindowMilliseconds = duplicateWindowMilliseconds
            self.maxIncidentFolders = maxIncidentFolders
            self.repeatIntervalMilliseconds = repeatIntervalMilliseconds
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
            guard (1...Self.maxIncidentFoldersLimit).contains(maxIncidentFolders) else {
                throw ConfigurationError(
                    "max_incident_folders must be 1-\(Self.maxIncidentFoldersLimit), not \(maxIncidentFolders): each folder holds up to about 10 KB"
                )
            }
            guard (0...Self.maxRepeatIntervalMilliseconds).contains(repeatIntervalMilliseconds) else {
                throw ConfigurationError(
                    "repeat_interval_milliseconds must be 0-\(Self.maxRepeatIntervalMilliseconds) (0 forwards every repeat), not \(repeatIntervalMilliseconds)"
                )
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
    private var folders: [OrderingKey: IncidentFolder] = [:]
    /// Folders in order of their last change, for forgetting the oldest; entries whose sequence
    /// no longer matches the folder are stale and skipped.
    private var folderOrder: Deque<(sequence: UInt64, key: OrderingKey)> = []
    /// The next folder change's `IncidentFolder.sequence`.
    private var nextFolderSequence: UInt64 = 1
    public private(set) var maintenance = MaintenanceWindows()
    private var heartbeats: [String: Heartbeat] = [:]
    /// Per routing key, the low-priority triggers waiting for its next digest.
    private var digests: [String: Digest] = [:]
    /// The newest failover rehearsals, oldest first, at most `DrillRecord.maxDrills`.
    public private(set) var drills: [DrillRecord] = []

    public init(limits: Limits) {
        self.limits = limits
        self.nextEventNumber = 1
    }

    /// Rebuilds the state from what the store or a snapshot holds.
    public init(limits: Limits, contents: Contents) {
        self.init(
            limits: limits, events: contents.events, dedupEntries: contents.dedupEntries, nextEventNumber: contents.nextEventNumber,
            intents: contents.intents, folders: contents.folders)
        maintenance = MaintenanceWindows(windows: contents.windows, held: contents.held, nextWindowID: contents.nextWindowID)
        for heartbeat in contents.heartbeats {
            precondition(heartbeats[heartbeat.name] == nil, "two heartbeats named \(heartbeat.name)")
            heartbeats[heartbeat.name] = heartbeat
        }
        for digest in contents.digests {
            precondition(digests[digest.routingKey] == nil, "two digests for one routing key")
            digests[digest.routingKey] = digest
        }
        precondition(contents.drills.count <= DrillRecord.maxDrills, "more than \(DrillRecord.maxDrills) drills")
        precondition(zip(contents.drills, contents.drills.dropFirst()).allSatisfy { $0.id < $1.id }, "drills out of order")
        drills = contents.drills
    }

    public init(
        limits: Limits, events: [QueuedEvent], dedupEntries: [DedupEntry], nextEventNumber: UInt64, intents: [DeliveryIntent] = [],
        folders: [IncidentFolder] = []
    ) {
        self.init(limits: limits)
        self.nextEventNumber = nextEventNumber
        for folder in folders.sorted(by: { $0.sequence < $1.sequence }) {
            precondition(self.folders[folder.key] == nil, "two folders for \(folder.key)")
            self.folders[folder.key] = folder
            folderOrder.append((folder.sequence, folder.key))
            nextFolderSequence = folder.sequence + 1
        }
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

    /// Pending, dead and held events: what `maxQueuedEvents` bounds.
    public var queuedCount: Int { pendingCount + deadCount + maintenance.heldCount }

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

    /// The folder as readers see it: an entry recorded `queued` whose event has left the queue
    /// was delivered (every other way out records its own outcome).
    public func folder(for key: OrderingKey) -> IncidentFolder? { folders[key].map(seen) }

    private func seen(_ folder: IncidentFolder) -> IncidentFolder {
        var folder = folder
        folder.markDelivered { events[$0] == nil }
        return folder
    }

    public var folderCount: Int { folders.count }

    /// Folders that `filter` selects, most recently changed first, starting below the sequence
    /// `before` (a page's cursor).
    public func folders(matching filter: IncidentFilter, before: UInt64 = .max, limit: Int) -> [IncidentFolder] {
        var page: [IncidentFolder] = []
        for (sequence, key) in folderOrder.reversed() where sequence < before {
            guard page.count < limit else { break }
            guard let folder = folders[key], folder.sequence == sequence, filter.matches(folder) else { continue }
            page.append(seen(folder))
        }
        return page
    }

    /// The whole state, in the form the store and a snapshot hold it.
    public var contents: Contents {
        Contents(
            events: events.values.sorted { $0.number < $1.number }, dedupEntries: dedup.values.sorted { $0.lastNumber < $1.lastNumber },
            nextEventNumber: nextEventNumber, intents: intents.values.sorted { $0.eventNumber < $1.eventNumber },
            folders: folders.values.sorted { $0.sequence < $1.sequence }, windows: maintenance.sortedWindows,
            held: maintenance.allHeld, nextWindowID: maintenance.nextWindowID, heartbeats: sortedHeartbeats,
            digests: digests.values.sorted { $0.routingKey < $1.routingKey }, drills: drills)
    }

    public var sortedHeartbeats: [Heartbeat] { heartbeats.values.sorted { $0.name < $1.name } }

    // MARK: apply

    public mutating func apply(_ command: RelayCommand, effects: inout Effects) -> CommandResult {
        switch command {
        case .accept(let acceptance):
            return accept(acceptance, effects: &effects)
        case .recordAttempt(let number, let attempt):
            return record(attempt, for: number, effects: &effects)
        case .openIntent(let intent):
            return open(intent, effects: &effects)
        case .acceptAndOpenIntent(let acceptance, let term):
            let result = accept(acceptance, effects: &effects)
            // Only a new event first for its key (`open` checks that), with no older request to
            // fence off: anything else is left to the leader's scheduler and its separate intent.
            if case .accepted(_, let number) = result, intents[acceptance.key] == nil {
                _ = open(DeliveryIntent(key: acceptance.key, eventNumber: number, term: term, attempt: 1), effects: &effects)
            }
            return result
        case .recordAttemptAndOpenIntent(let number, let attempt, let next):
            let result = record(attempt, for: number, effects: &effects)
            _ = open(next, effects: &effects)
            return result
        case .retryDead(let filter):
            return retryDead(filter, effects: &effects)
        case .purge(let filter):
            return purge(filter, effects: &effects)
        case .openWindow(let spec, let time):
            admitReleased(maintenance.releaseDue(at: time, effects: &effects), effects: &effects)
            switch maintenance.open(spec, at: time, effects: &effects) {
            case .success(let window): return .windowSaved(window)
            case .failure(let error): return .windowRefused(error)
            }
        case .changeWindow(let id, let change, let time):
            admitReleased(maintenance.releaseDue(at: time, effects: &effects), effects: &effects)
            switch maintenance.change(id, change, at: time, effects: &effects) {
            case .success(let (window, released)):
                admitReleased(released, effects: &effects)
                return .windowSaved(window)
            case .failure(let error): return .windowRefused(error)
            }
        case .endWindow(let id, let time):
            switch maintenance.end(id, at: time, effects: &effects) {
            case .success(let (window, released)):
                admitReleased(released, effects: &effects)
                admitReleased(maintenance.releaseDue(at: time, effects: &effects), effects: &effects)
                return .windowEnded(window, released: released.count)
            case .failure(let error): return .windowRefused(error)
            }
        case .releaseWindows(let time):
            let released = maintenance.releaseDue(at: time, effects: &effects)
            admitReleased(released, effects: &effects)
            return .windowsReleased(count: released.count)
        case .putHeartbeat(let name, let spec, let time):
            return putHeartbeat(name, spec, at: time, effects: &effects)
        case .checkIn(let name, let routingKey, let interval, let time):
            return checkIn(name, routingKey: routingKey, intervalMilliseconds: interval, at: time, effects: &effects)
        case .deleteHeartbeat(let name, let time):
            guard let heartbeat = heartbeats.removeValue(forKey: name) else {
                return .heartbeatRefused(OperatorError("no heartbeat \(name)", kind: .unknown))
            }
            if heartbeat.alarmed {
                _ = acceptOwnEvent(heartbeat.resolveBody(routingKey: heartbeat.spec.routingKey), at: time, effects: &effects)
            }
            effects.mutations.append(.deleteHeartbeat(name))
            return .heartbeatDeleted(heartbeat)
        case .flushDigests(let time):
            return .digestsFlushed(count: flushDueDigests(at: time, effects: &effects))
        case .recordDrill(var drill):
            if let refusal = drill.refusal { return .drillRefused(OperatorError(refusal)) }
            drill.id = (drills.last?.id ?? 0) + 1
            drills.append(drill)
            effects.mutations.append(.putDrill(drill))
            if drills.count > DrillRecord.maxDrills {
                effects.mutations.append(.deleteDrill(id: drills.removeFirst().id))
            }
            return .drillRecorded(drill)
        case .applyWebhook(let dedupKey, let view):
            return applyWebhook(view, dedupKey: dedupKey, effects: &effects)
        case .heartbeatMissed(let name, let checkIns, let time):
            guard var heartbeat = heartbeats[name], heartbeat.checkIns == checkIns, !heartbeat.alarmed else {
                return .heartbeatRefused(OperatorError("heartbeat \(name) checked in, or its alarm is already open", kind: .conflict))
            }
            // With the queue full the alarm is not raised: the leader's timer tries again.
            guard acceptOwnEvent(heartbeat.triggerBody(atMilliseconds: time), at: time, effects: &effects) else { return .queueFull }
            heartbeat.alarmed = true
            heartbeat.alarms += 1
            heartbeats[name] = heartbeat
            effects.mutations.append(.putHeartbeat(heartbeat))
            return .heartbeatUpdated(heartbeat)
        }
    }

    private mutating func accept(_ acceptance: Acceptance, effects: inout Effects) -> CommandResult {
        // Held events of windows that have ended go first, so that a key's later events queue
        // behind them even before the leader's release arrives.
        admitReleased(maintenance.releaseDue(at: acceptance.receivedAtMilliseconds, effects: &effects), effects: &effects)
        flushDueDigests(at: acceptance.receivedAtMilliseconds, effects: &effects)
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
        if let retry = maintenance.heldRetry(
            of: acceptance.fingerprint, at: acceptance.receivedAtMilliseconds, within: limits.duplicateWindowMilliseconds)
        {
            return .held(dedupKey: retry.acceptance.key.dedupKey, windowID: retry.windowID)
        }
        if let result = applyMaintenance(acceptance, effects: &effects) { return result }
        return admit(acceptance, released: false, effects: &effects)
    }

    /// Queues an event, or records it as a repeat. `released` events were accepted earlier and
    /// held by a maintenance window: they are already counted against the queue's limit.
    private mutating func admit(_ acceptance: Acceptance, released: Bool, effects: inout Effects) -> CommandResult {
        let key = acceptance.key
        if isDigested(acceptance) {
            file(acceptance, eventNumber: nil, outcome: .digested, released: released, effects: &effects)
            if acceptance.action == .trigger {
                let time = acceptance.receivedAtMilliseconds
                var digest =
                    digests[key.routingKey] ?? Digest(routingKey: key.routingKey, startedAtMilliseconds: time, lastAtMilliseconds: time)
                digest.add(source: acceptance.facts?.source ?? "", summary: acceptance.facts?.summary ?? "", atMilliseconds: time)
                digests[key.routingKey] = digest
                effects.mutations.append(.putDigest(digest))
            }
            return .digested(dedupKey: key.dedupKey)
        }
        if isRepeat(acceptance) {
            file(acceptance, eventNumber: nil, outcome: .repeatSuppressed, released: released, effects: &effects)
            // The repeat's bytes become the key's newest, so that a client's retry of them is
            // answered as a retry, not recorded as one more repeat.
            if var entry = dedup[key], !entry.keyWasAssigned {
                entry.lastFingerprint = acceptance.fingerprint
                entry.lastAcceptedAtMilliseconds = acceptance.receivedAtMilliseconds
                dedup[key] = entry
                effects.mutations.append(.putDedup(entry))
            }
            return .repeatSuppressed(dedupKey: key.dedupKey)
        }
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
            settle(tail, as: .replaced, effects: &effects)
            file(acceptance, eventNumber: tailNumber, outcome: .queued, released: released, effects: &effects)
            return .coalesced(dedupKey: key.dedupKey, eventNumber: tailNumber)
        }
        guard released || queuedCount < limits.maxQueuedEvents else { return .queueFull }
        let number = nextEventNumber
        nextEventNumber += 1
        let event = QueuedEvent(
            number: number, kind: acceptance.kind, action: acceptance.action, key: key, body: acceptance.body,
            fingerprint: acceptance.fingerprint, receivedAtMilliseconds: acceptance.receivedAtMilliseconds)
        remember(acceptance, number: number, effects: &effects)
        file(acceptance, eventNumber: number, outcome: .queued, released: released, effects: &effects)
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
            // Not written to the folder: an entry still `queued` whose event has left the queue
            // was delivered (`folder(for:)`), which saves rewriting the folder for every event.
            remove(number)
            effects.mutations.append(.deleteEvent(number))
            effects.changedKeys.append(event.key)
        case .retry:
            event.lastError = attempt.detail
            events[number] = event
            effects.mutations.append(.putEvent(event))
        case .deadLettered:
            settle(event, as: .deadLettered, effects: &effects)
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
            settle(event, as: .queued, from: .deadLettered, effects: &effects)
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
            settle(event, as: .purged, from: event.state == .dead ? .deadLettered : .queued, effects: &effects)
            remove(event.number)
            effects.mutations.append(.deleteEvent(event.number))
            if wasHead { effects.changedKeys.append(event.key) }
        }
        return .purged(count: doomed.count)
    }

    // MARK: maintenance windows

    /// Suppresses or holds an alert event that a maintenance window covers; nil lets it through.
    private mutating func applyMaintenance(_ acceptance: Acceptance, effects: inout Effects) -> CommandResult? {
        guard acceptance.kind == .alert else { return nil }
        let key = acceptance.key
        let folder = folders[key]
        // PagerDuty has this incident open from before: its acknowledge or resolve always goes.
        if acceptance.action == .acknowledge || acceptance.action == .resolve, folder?.lastForwardedTrigger != nil {
            if acceptance.action == .resolve {
                for stale in maintenance.dropHeld(of: key, effects: &effects) {
                    releaseInFolder(stale.acceptance.key, as: .superseded, eventNumber: nil, effects: &effects)
                }
            }
            return nil
        }
        let windowID: UInt64
        if let holding = maintenance.holdingWindow(of: key) {
            // Behind the key's held events, whether or not the window covers this one.
            windowID = holding
        } else if let window = maintenance.activeWindow(
            for: key, source: acceptance.facts?.source ?? folder?.source, at: acceptance.receivedAtMilliseconds)
        {
            guard window.spec.hold else {
                maintenance.countSuppressed(in: window.id, effects: &effects)
                file(acceptance, eventNumber: nil, outcome: .maintenanceSuppressed, effects: &effects)
                return .suppressedByMaintenance(dedupKey: key.dedupKey, windowID: window.id)
            }
            windowID = window.id
        } else {
            return nil
        }
        guard queuedCount < limits.maxQueuedEvents else { return .queueFull }
        maintenance.hold(acceptance, in: windowID, effects: &effects)
        file(acceptance, eventNumber: nil, outcome: .held, effects: &effects)
        return .held(dedupKey: key.dedupKey, windowID: windowID)
    }

    /// Queues events a window released, in the order they were held.
    private mutating func admitReleased(_ released: [HeldEvent], effects: inout Effects) {
        for event in released { _ = admit(event.acceptance, released: true, effects: &effects) }
    }

    // MARK: digests

    /// A trigger at or below its routing key's digest severity; or an acknowledge or resolve of
    /// an incident whose triggers were all digested (PagerDuty never saw it).
    private func isDigested(_ acceptance: Acceptance) -> Bool {
        guard acceptance.kind == .alert, !acceptance.key.dedupKey.hasPrefix(Digest.dedupKeyPrefix),
            let rule = limits.digestRules.rule(for: acceptance.key.routingKey)
        else { return false }
        switch acceptance.action {
        case .trigger:
            return acceptance.facts?.severity.map(rule.digests) ?? false
        case .acknowledge, .resolve:
            guard let folder = folders[acceptance.key] else { return false }
            return folder.lastForwardedTrigger == nil && folder.counts.digested > 0
        case .change:
            return false
        }
    }

    /// Sends every digest whose interval has passed by `time` (or whose routing key no longer
    /// has a rule), in routing key order. Returns how many went.
    @discardableResult
    private mutating func flushDueDigests(at time: Int64, effects: inout Effects) -> Int {
        guard !digests.isEmpty else { return 0 }
        var flushed = 0
        for routingKey in digests.keys.sorted() {
            let digest = digests[routingKey]!
            let rule = limits.digestRules.rule(for: routingKey)
            guard rule.map({ digest.isDue(atMilliseconds: time, intervalMilliseconds: $0.intervalMilliseconds) }) ?? true else { continue }
            digests[routingKey] = nil
            effects.mutations.append(.deleteDigest(routingKey: routingKey))
            let body = digest.eventBody(severity: rule?.maxSeverity ?? .info, intervalMilliseconds: rule?.intervalMilliseconds ?? 0)
            _ = acceptOwnEvent(body, at: time, effects: &effects)
            flushed += 1
        }
        return flushed
    }

    /// Whether a digest is due by `time`: the leader's loop proposes `flushDigests` then.
    public func hasDigestsDue(at time: Int64) -> Bool {
        digests.values.contains { digest in
            limits.digestRules.rule(for: digest.routingKey).map {
                digest.isDue(atMilliseconds: time, intervalMilliseconds: $0.intervalMilliseconds)
            } ?? true
        }
    }

    // MARK: heartbeats

    private mutating func putHeartbeat(_ name: String, _ spec: Heartbeat.Spec, at time: Int64, effects: inout Effects) -> CommandResult {
        do {
            try Heartbeat.validate(name: name)
            try spec.validate()
        } catch {
            return .heartbeatRefused(error)
        }
        var heartbeat: Heartbeat
        if let existing = heartbeats[name] {
            heartbeat = existing
            // An open alarm belongs to the old integration: it is resolved there.
            if heartbeat.alarmed && spec.routingKey != existing.spec.routingKey {
                heartbeat.alarmed = !acceptOwnEvent(
                    existing.resolveBody(routingKey: existing.spec.routingKey), at: time, effects: &effects)
            }
            heartbeat.spec = spec
        } else {
            guard heartbeats.count < Heartbeat.maxHeartbeats else {
                return .heartbeatRefused(OperatorError("there are already \(Heartbeat.maxHeartbeats) heartbeats; delete some first"))
            }
            heartbeat = Heartbeat(name: name, spec: spec, createdAtMilliseconds: time)
        }
        heartbeats[name] = heartbeat
        effects.mutations.append(.putHeartbeat(heartbeat))
        return .heartbeatSaved(heartbeat)
    }

    private mutating func checkIn(
        _ name: String, routingKey: String, intervalMilliseconds: Int64?, at time: Int64, effects: inout Effects
    ) -> CommandResult {
        guard var heartbeat = heartbeats[name] else {
            return .heartbeatRefused(
                OperatorError("no heartbeat \(name); an operator creates it with PUT /v1/heartbeats/\(name) (admin token)", kind: .unknown))
        }
        guard routingKey == heartbeat.spec.routingKey else {
            return .heartbeatRefused(OperatorError("the routing key is not heartbeat \(name)'s", kind: .forbidden))
        }
        if let intervalMilliseconds, intervalMilliseconds != heartbeat.spec.intervalMilliseconds {
            return .heartbeatRefused(
                OperatorError(
                    "heartbeat \(name) expects a check-in every \(heartbeat.spec.intervalMilliseconds / 1_000) s, not \(intervalMilliseconds / 1_000) s; an operator changes it with PUT",
                    kind: .conflict))
        }
        if heartbeat.alarmed {
            // With the queue full the alarm stays open, and the next check-in resolves it.
            heartbeat.alarmed = !acceptOwnEvent(
                heartbeat.resolveBody(routingKey: heartbeat.spec.routingKey), at: time, effects: &effects)
        }
        heartbeat.checkIns += 1
        heartbeat.lastCheckInAtMilliseconds = time
        heartbeats[name] = heartbeat
        effects.mutations.append(.putHeartbeat(heartbeat))
        return .heartbeatUpdated(heartbeat)
    }

    /// Accepts an event of the relay's own (a heartbeat's trigger or resolve, a digest) as if a
    /// client had sent it, so it takes every rule an event takes. Built here from replicated
    /// fields, it is the same on every node.
    /// Returns false only if the queue was full.
    private mutating func acceptOwnEvent(_ body: [UInt8], at time: Int64, effects: inout Effects) -> Bool {
        guard case .success(let event) = EventValidator.validate(body: body, api: .v2Alert) else {
            preconditionFailure("the relay's own event failed validation: \(String(decoding: body, as: UTF8.self))")
        }
        // Each carries its own key, so none is ever assigned.
        return accept(Acceptance(event, assignedKey: "", receivedAtMilliseconds: time), effects: &effects) != .queueFull
    }

    // MARK: incident folders

    /// A trigger that adds nothing to an open incident: the same severity and summary as the
    /// trigger PagerDuty already has (or will have), within the repeat interval of it.
    private func isRepeat(_ acceptance: Acceptance) -> Bool {
        guard limits.repeatIntervalMilliseconds > 0, acceptance.kind == .alert, acceptance.action == .trigger,
            let facts = acceptance.facts, let folder = folders[acceptance.key], folder.state != .resolved,
            let forwarded = folder.lastForwardedTrigger
        else { return false }
        return forwarded.severity == facts.severity && forwarded.summary == facts.summary
            && acceptance.receivedAtMilliseconds - forwarded.receivedAtMilliseconds <= limits.repeatIntervalMilliseconds
    }

    /// Records an alert event in its incident's folder, creating the folder if needed. A
    /// `released` event was filed when it was held: its entry gets the outcome now.
    private mutating func file(
        _ acceptance: Acceptance, eventNumber: UInt64?, outcome: IncidentFolder.Outcome, released: Bool = false,
        effects: inout Effects
    ) {
        guard acceptance.kind == .alert else { return }
        let key = acceptance.key
        let at = acceptance.receivedAtMilliseconds
        let isNew = folders[key] == nil
        if isNew {
            folders[key] = IncidentFolder(
                key: key, state: .open, source: "", firstSeenAtMilliseconds: at, lastSeenAtMilliseconds: at, sequence: 0)
        }
        // In place: a copy out of the dictionary would copy the folder's history for every event.
        if Self.record(acceptance, eventNumber: eventNumber, outcome: outcome, released: released, isNew: isNew, in: &folders[key]!) {
            folders[key]!.sequence = nextFolderSequence
            nextFolderSequence += 1
            folderOrder.append((folders[key]!.sequence, key))
        }
        effects.mutations.append(.putFolder(folders[key]!))
        if isNew { forgetOldFolders(effects: &effects) }
    }

    /// What `file` changes in the folder. Returns whether it appended a history entry (a
    /// released event's entry was made when it was held).
    private static func record(
        _ acceptance: Acceptance, eventNumber: UInt64?, outcome: IncidentFolder.Outcome, released: Bool, isNew: Bool,
        in folder: inout IncidentFolder
    ) -> Bool {
        let at = acceptance.receivedAtMilliseconds
        let facts = acceptance.facts
        if outcome == .repeatSuppressed { folder.counts.repeatsSuppressed += 1 }
        let appended = !(released && folder.releaseHeld(as: outcome, eventNumber: eventNumber))
        if appended {
            folder.lastSeenAtMilliseconds = max(folder.lastSeenAtMilliseconds, at)
            if let source = facts?.source, !source.isEmpty { folder.source = source }
            if acceptance.action == .trigger, let facts {
                folder.summary = facts.summary
                folder.severity = facts.severity
            }
            if outcome != .repeatSuppressed && !released {
                switch acceptance.action {
                case .trigger: folder.counts.triggers += 1
                case .acknowledge: folder.counts.acknowledges += 1
                case .resolve: folder.counts.resolves += 1
                case .change: preconditionFailure("a change event was filed as an incident")
                }
                if outcome == .maintenanceSuppressed { folder.counts.maintenanceSuppressed += 1 }
                if outcome == .held { folder.counts.held += 1 }
                if outcome == .digested { folder.counts.digested += 1 }
                folder.state = IncidentFolder.state(after: acceptance.action, from: isNew ? nil : folder.state) ?? folder.state
            }
            folder.append(
                .init(
                    eventNumber: eventNumber, action: acceptance.action, severity: facts?.severity, summary: facts?.summary ?? "",
                    receivedAtMilliseconds: at, outcome: outcome))
        }
        // What PagerDuty will have: the trigger a repeat is compared with, and none once resolved.
        if outcome == .queued, let eventNumber {
            switch acceptance.action {
            case .trigger:
                folder.lastForwardedTrigger = .init(
                    eventNumber: eventNumber, severity: facts?.severity, summary: facts?.summary ?? "", receivedAtMilliseconds: at)
            case .resolve: folder.lastForwardedTrigger = nil
            case .acknowledge, .change: break
            }
        }
        return appended
    }

    /// A webhook changes every folder of its dedup_key that does not refuse it. PagerDuty names
    /// the incident, not the routing key, and a dedup_key is rarely under two; a linear scan is
    /// cheap at the rate people acknowledge incidents.
    private mutating func applyWebhook(_ view: PagerDutyView, dedupKey: String, effects: inout Effects) -> CommandResult {
        var changed = 0
        var refusals: [String] = []
        for key in folders.keys.filter({ $0.dedupKey == dedupKey }).sorted(by: { $0.routingKey < $1.routingKey }) {
            if let refusal = folders[key]!.refusal(of: view) {
                refusals.append(refusal)
                continue
            }
            folders[key]!.apply(view)
            folders[key]!.sequence = nextFolderSequence
            nextFolderSequence += 1
            folderOrder.append((folders[key]!.sequence, key))
            effects.mutations.append(.putFolder(folders[key]!))
            changed += 1
        }
        return .webhookApplied(folders: changed, refusals: refusals)
    }

    /// Gives a held event's folder entry its outcome, when the event leaves its window without
    /// being queued.
    private mutating func releaseInFolder(
        _ key: OrderingKey, as outcome: IncidentFolder.Outcome, eventNumber: UInt64?, effects: inout Effects
    ) {
        guard var folder = folders[key], folder.releaseHeld(as: outcome, eventNumber: eventNumber) else { return }
        folders[key] = folder
        effects.mutations.append(.putFolder(folder))
    }

    /// Records what became of a queued event in its folder, if the folder still holds it.
    private mutating func settle(
        _ event: QueuedEvent, as outcome: IncidentFolder.Outcome, from previous: IncidentFolder.Outcome = .queued,
        effects: inout Effects
    ) {
        guard var folder = folders[event.key] else { return }
        let hadForwarded = folder.lastForwardedTrigger
        guard folder.settle(eventNumber: event.number, as: outcome, from: previous) || folder.lastForwardedTrigger != hadForwarded
        else { return }
        folders[event.key] = folder
        effects.mutations.append(.putFolder(folder))
    }

    private mutating func forgetOldFolders(effects: inout Effects) {
        while folders.count > limits.maxIncidentFolders, let (sequence, key) = folderOrder.popFirst() {
            guard folders[key]?.sequence == sequence else { continue }
            folders[key] = nil
            effects.mutations.append(.deleteFolder(key))
        }
        precondition(folders.count <= limits.maxIncidentFolders, "the folders are over their limit")
        if folderOrder.count > 2 * folders.count + 1024 {
            folderOrder = Deque(folders.values.sorted { $0.sequence < $1.sequence }.map { ($0.sequence, $0.key) })
        }
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
