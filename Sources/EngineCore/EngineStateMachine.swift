import ClusterCore
import DequeModule
import RelayCore
import RelayReplication

/// The node's decisions, as a pure state machine: each input is a mutating method that returns
/// the actions to carry out, in order. `RelayEngine` carries them out against SQLite, HTTP and
/// the peer links; the simulator carries them out against a simulated disk, network, clock and
/// upstream. Both run this code, so what the simulator proves holds for the node that ships.
///
/// It owns the Raft node (`RaftNode`) and carries out each `Ready` in the contract's order: one
/// synced write, then messages, then answers. Concurrent commands share a log append and a write
/// (group commit), and while a write is out the next one gathers. A leader's appends leave before
/// its own write is synced (they promise nothing about its disk); votes and acknowledgements
/// wait for the write. Applied entries' store writes may wait for the next transaction.
///
/// Only the leader delivers, and only while its lease allows (`mayStartDelivery`). Each send
/// first commits an intent (`DeliveryFence`), and each outcome is itself a replicated
/// command: a key's next event starts only once the outcome is applied, so a new leader resumes
/// where the old one stopped and never re-sends an event behind a later one.
public struct EngineStateMachine: Sendable {
    public typealias Node = RaftNode<RelayStateMachine>
    public typealias Ready = Node.Ready

    /// Who waits for a command's result: a client, or one of the engine's own deliveries.
    enum Origin: Sendable, Equatable {
        case client(RequestID)
        /// A client's event proposed with its first attempt's intent (`acceptAndOpenIntent`):
        /// `key` is in flight in `term`'s scheduler until the entry's result is known.
        case clientDelivering(RequestID, key: OrderingKey, term: Term)
        case intent(eventNumber: UInt64)
        case outcome(eventNumber: UInt64)

        var request: RequestID? {
            switch self {
            case .client(let request), .clientDelivering(let request, _, _): request
            case .intent, .outcome: nil
            }
        }
    }

    struct Proposal: Sendable {
        let origin: Origin
        let command: RelayCommand
        let deadline: Int64
        /// A client request still waiting here at this time is refused, not proposed (see
        /// `request_hold_milliseconds`); nil for the engine's own commands.
        let holdDeadline: Int64?
    }

    struct Waiter: Sendable {
        let origin: Origin
        let term: Term
        let deadline: Int64
    }

    /// The one store write out now, and what waits for it.
    struct Write: Sendable {
        let readies: [Ready]
        /// Each Ready's messages that may leave only once the write is synced.
        let afterWrite: [[Message<RelayStateMachine>]]
        let lastWritten: LogIndex?
        let mustSync: Bool
        let startedAt: Int64
    }

    /// Where one event's attempt of this term stands. Its key is in flight in the scheduler
    /// throughout, and released only when the attempt ends.
    enum Delivery: Sendable {
        case committingIntent(QueuedEvent, term: Term)
        case sending(QueuedEvent, term: Term, startedAt: Int64)
        /// `next`: the key's next event, whose intent was proposed right behind this outcome and
        /// which now holds the key.
        case committingOutcome(QueuedEvent, term: Term, retryAt: Int64?, pauseUntil: Int64?, next: UInt64?)
    }

    /// A graceful shutdown's progress: deliveries end, leadership is handed over, the tables
    /// are made current.
    enum Drain: Sendable {
        case deliveries(deadline: Int64)
        case handOver(deadline: Int64, nextAttempt: Int64)
        case flush
        case done
    }

    /// How often a draining leader asks again for a follower to take over, when none was up to
    /// date: each try also sends the appends that bring one up to date.
    static let handOverRetryMilliseconds: Int64 = 20

    public let settings: EngineSettings
    public private(set) var raft: Node
    /// Exists only while this node leads with a lease; rebuilt in each term.
    private var scheduler: DeliveryScheduler?
    private var schedulerTerm: Term = 0
    private var proposals: Deque<Proposal> = []
    private var waiting: [LogIndex: Waiter] = [:]
    private var readies: [Ready] = []
    private var write: Write?
    /// Steps that must be written although no Ready asks for it (the recovering marker).
    private var pendingSteps: [StoreStep] = []
    /// Store writes of applied entries not yet in a transaction: they can wait, because the
    /// log they come from is durable and is replayed after a crash.
    private var unwrittenApplied: (index: LogIndex, term: Term, mutations: [StoreMutation])?
    private var flushRequested = false
    /// The last index whose application the engine has seen (an installed snapshot counts).
    private var appliedThrough: LogIndex
    private var deliveries: [UInt64: Delivery] = [:]
    private var drain: Drain?
    /// The drain is an operator's handover (`startHandOver`), not a shutdown: once it is over
    /// the node goes on, as a follower, or as the leader still when no follower could take over.
    private var drainIsHandOverOnly = false
    private var lastRole: Role
    /// Lost its disk (or is a fresh node that may be a replacement) and must not vote until
    /// caught up.
    public private(set) var recovering: Bool
    /// True until a fresh node of a cluster learns from its peers whether the cluster is new.
    public private(set) var awaitingDiskDecision: Bool
    public private(set) var storeFailure: String?
    /// The clock at the engine's last look (nil until it starts ticking, so that a slow startup
    /// is not taken for a freeze), and when it last found the process had been frozen.
    private var lastClockReading: Int64?
    private var lastWakeMilliseconds: Int64 = .min
    private var lastCatchUpReport: Int64 = .min / 2
    private var actions: [EngineAction] = []

    public init(raft: Node, settings: EngineSettings, recovering: Bool, awaitingDiskDecision: Bool) {
        self.raft = raft
        self.settings = settings
        self.recovering = recovering
        self.awaitingDiskDecision = awaitingDiskDecision
        appliedThrough = raft.lastApplied
        lastRole = raft.role
    }

    // MARK: queries

    /// Keys with a request of this term under way.
    public var deliveriesInFlight: Int { scheduler?.inFlightCount ?? 0 }

    /// How `routingKey`'s delivery budget stands on this node, while it delivers as leader:
    /// incidents waiting for a slot, and the slot's length now (nil without a budget).
    public func deliveryBudget(for routingKey: String, now: Int64) -> (waitingForSlot: Int, slotMilliseconds: Int64?)? {
        scheduler.map { ($0.parkedCount(for: routingKey), $0.slotMilliseconds(for: routingKey, now: now)) }
    }

    // MARK: inputs

    /// A client's command. Only the leader takes commands; its answer comes once the entry is
    /// applied in the term it was proposed in. One still waiting to be proposed at
    /// `holdDeadlineMilliseconds` is refused as stale instead.
    public mutating func submit(_ command: RelayCommand, request: RequestID, holdDeadlineMilliseconds: Int64?, now: Int64)
        -> [EngineAction]
    {
        if let storeFailure {
            emit(.answer(request, .failure(.storeFailed(storeFailure))))
        } else if raft.role != .leader {
            emit(.answer(request, .failure(.notLeader(leader: raft.leaderID))))
        } else {
            proposals.append(
                Proposal(
                    origin: .client(request), command: command, deadline: now + settings.commitTimeoutMilliseconds,
                    holdDeadline: holdDeadlineMilliseconds))
            settle(now: now)
        }
        return takeActions()
    }

    /// Peer messages; those addressed to another node are ignored.
    public mutating func receive(_ messages: [Message<RelayStateMachine>], now: Int64) -> [EngineAction] {
        for message in messages where message.to == raft.id {
            enqueue(raft.receive(message, now: now), now: now)
            roleMayHaveChanged(now: now)
        }
        settle(now: now)
        return takeActions()
    }

    /// Time passes: heartbeats, elections, expired waits, deliveries whose backoff ended.
    public mutating func tick(now: Int64) -> [EngineAction] {
        readClock(now: now, ticking: true)
        enqueue(raft.tick(now: now), now: now)
        roleMayHaveChanged(now: now)
        expireWaits(now: now)
        reportCatchUp(now: now)
        settle(now: now)
        return takeActions()
    }

    /// The write asked for last is synced.
    public mutating func writeCompleted(now: Int64) -> [EngineAction] {
        guard let write else { preconditionFailure("a write completed that was never asked for") }
        self.write = nil
        emit(.notice(.committed(entries: write.readies.reduce(0) { $0 + $1.entries.count }, durationMilliseconds: now - write.startedAt)))
        complete(write, now: now)
        settle(now: now)
        return takeActions()
    }

    /// The write asked for last failed: the in-memory state is ahead of the disk. The node
    /// stops taking commands and delivering, so a supervisor restarts it from disk.
    public mutating func writeFailed(_ reason: String, now: Int64) -> [EngineAction] {
        precondition(write != nil, "a write failed that was never asked for")
        write = nil
        fail(with: reason, now: now)
        advanceDrain(now: now)
        return takeActions()
    }

    /// The upstream answered (or the request timed out) for a delivery started with
    /// `startDelivery`. `wallClockMilliseconds` stamps the attempt for people; `jitter`, in
    /// [0, 1), spreads the retry.
    public mutating func deliveryFinished(
        eventNumber: UInt64, response: UpstreamResponse, now: Int64, wallClockMilliseconds: Int64, jitter: Double
    ) -> [EngineAction] {
        guard case .sending(let event, let term, let startedAt)? = deliveries[eventNumber] else {
            // Abandoned (leadership moved on, or the store failed): its answer no longer matters.
            return takeActions()
        }
        let verdict = UpstreamVerdict.classify(statusCode: response.statusCode, retryAfter: response.retryAfter)
        let outcome = verdict.outcome(attemptsBefore: event.attempts, policy: settings.retry)
        let attempt = AttemptRecord(
            outcome: outcome, atMilliseconds: wallClockMilliseconds, durationMilliseconds: now - startedAt,
            statusCode: response.statusCode, detail: Self.detail(verdict, outcome, response, attempts: event.attempts + 1))
        emit(.notice(.attempt(attempt, event: event, term: term)))
        var retryAt: Int64?
        var pauseUntil: Int64?
        if outcome == .retry, case .retry(let retryAfter) = verdict {
            retryAt =
                now
                + settings.retry.backoffMilliseconds(afterAttempts: event.attempts + 1, jitter: jitter, retryAfterMilliseconds: retryAfter)
            if response.statusCode == 429 { pauseUntil = retryAt }
        }
        // PagerDuty's limit is per routing key: its budget shrinks for every key of it.
        if response.statusCode == 429 { scheduler?.throttled(event.key.routingKey, nowMilliseconds: now) }
        // The key's next event rides behind the outcome: its intent is in the outcome's entry,
        // so one commit serves both. It opens only once the outcome has applied
        // (`RelayStateMachine` opens an intent only for the event first for its key), and if the
        // outcome does not commit, neither does it.
        let next = outcome == .retry ? nil : nextAttempt(after: event, term: term, now: now)
        // The outcome is committed before the key's next event may be sent: after a crash or a
        // failover the relay must never re-send this event behind a later one.
        deliveries[eventNumber] = .committingOutcome(event, term: term, retryAt: retryAt, pauseUntil: pauseUntil, next: next?.number)
        var command = RelayCommand.recordAttempt(eventNumber: eventNumber, attempt)
        if let next {
            if settings.faults.injects(.releaseKeyBeforeOutcomeDurable) {
                send(next, term: term, now: now)
            } else {
                // One entry for both: the intent applies right after the outcome.
                deliveries[next.number] = .committingIntent(next, term: term)
                command = .recordAttemptAndOpenIntent(eventNumber: eventNumber, attempt, next: intent(for: next, term: term))
            }
        }
        proposals.append(
            Proposal(
                origin: .outcome(eventNumber: eventNumber), command: command, deadline: now + settings.commitTimeoutMilliseconds,
                holdDeadline: nil))
        settle(now: now)
        return takeActions()
    }

    /// Applied writes have waited long enough (`flushLater`): they get a transaction of their own.
    public mutating func flush(now: Int64) -> [EngineAction] {
        if unwrittenApplied != nil { flushRequested = true }
        settle(now: now)
        return takeActions()
    }

    /// Graceful shutdown: start no more deliveries and let those in flight end (each is bounded
    /// by the upstream timeout) so their outcomes are committed; then, if leading, hand
    /// leadership to an up-to-date follower so the cluster does not wait out an election
    /// timeout; then make the tables current. `drained` says when it is over.
    public mutating func startDrain(now: Int64) -> [EngineAction] {
        // A shutdown during a handover finishes the handover's drain and then stops.
        drainIsHandOverOnly = false
        if drain == nil {
            // Committing the last outcomes needs a majority, which may be gone (the last node of
            // a cluster stopping): wait for that only so long.
            let timing = settings.timing
            drain = .deliveries(deadline: now + timing.upstreamTimeoutMilliseconds + 2 * timing.minimumElectionTimeoutMilliseconds)
        }
        settle(now: now)
        return takeActions()
    }

    /// An operator's handover (`pdrelay drill`, `POST /v1/cluster/handover`): the shutdown's
    /// first two steps without the shutdown. Deliveries in flight end and no new one starts, so
    /// the successor inherits no request whose outcome is unknown; then leadership goes to an
    /// up-to-date follower. False (and nothing changes) unless this node leads a cluster and is
    /// neither draining nor failed.
    public mutating func startHandOver(now: Int64) -> (started: Bool, actions: [EngineAction]) {
        guard raft.role == .leader, raft.members.count > 1, drain == nil, storeFailure == nil else { return (false, takeActions()) }
        let timing = settings.timing
        drain = .deliveries(deadline: now + timing.upstreamTimeoutMilliseconds + 2 * timing.minimumElectionTimeoutMilliseconds)
        drainIsHandOverOnly = true
        settle(now: now)
        return (true, takeActions())
    }

    /// A fresh node of a cluster has heard whether the cluster is new (enough peers are fresh
    /// too): if so its empty disk forgot nothing; if not, it is a replacement and does not vote
    /// until caught up. `seed` starts the new Raft node's election timer.
    public mutating func diskDecided(clusterIsNew: Bool, seed: UInt64, now: Int64) -> [EngineAction] {
        guard awaitingDiskDecision else { return takeActions() }
        awaitingDiskDecision = false
        if clusterIsNew && raft.term == 0 && raft.lastLogIndex == 0 {
            raft = Node(
                id: raft.id, members: raft.members, timing: raft.timing, initialMachine: raft.machine, durable: nil, seed: seed, now: now,
                snapshotThresholdEntries: settings.snapshotThresholdEntries, faults: raft.faults)
            emit(.notice(.newCluster))
        } else {
            recovering = true
            emit(.notice(.replacementNode))
        }
        pendingSteps += [.hardState(raft.hardState), .recovering(recovering)]
        settle(now: now)
        return takeActions()
    }

    /// Whether a client request that arrived at `receivedAtMilliseconds` may still be taken: not
    /// if this process was frozen since (see `EngineError.staleRequest`).
    public mutating func admitsRequest(receivedAtMilliseconds: Int64, now: Int64) -> (admitted: Bool, actions: [EngineAction]) {
        readClock(now: now, ticking: false)
        let admitted =
            lastWakeMilliseconds == .min || receivedAtMilliseconds > lastWakeMilliseconds + settings.afterFreezeGraceMilliseconds
        return (admitted, takeActions())
    }

    // MARK: the Ready pipeline

    /// After every input: the role's consequences, the write pipeline, deliveries, the drain.
    private mutating func settle(now: Int64) {
        roleMayHaveChanged(now: now)
        pump(now: now)
        startDeliveries(now: now)
        advanceDrain(now: now)
        pump(now: now)
    }

    private mutating func enqueue(_ ready: Ready, now: Int64) {
        var ready = ready
        let writeRunning = write.map { now - $0.startedAt } ?? 0
        let heartbeats = ready.takeHeartbeats(writeRunningForMilliseconds: writeRunning, timing: settings.timing)
        if !heartbeats.isEmpty { emit(.send(heartbeats)) }
        if !ready.applied.isEmpty {
            emit(.notice(.applied(ready.applied)))
            // An applied entry is committed: a majority's disks hold it (the leader counts its
            // own only once synced), so its client hears now, not after this node's write queue
            // reaches the Ready. What that write adds is this node's tables, which its log
            // rebuilds after a crash.
            answer(ready.applied, now: now)
        }
        guard ready.needsPersistence || !ready.messages.isEmpty || !ready.applied.isEmpty else { return }
        readies.append(ready)
    }

    /// Carries out queued Readys in order while no write is out. The durable parts of everything
    /// queued go into one write; only after it is synced do their messages leave and their
    /// clients hear back. Readys with nothing to make durable complete at once.
    private mutating func pump(now: Int64) {
        while storeFailure == nil && write == nil {
            proposeQueued(now: now)
            let batch = readies
            readies = []
            guard !batch.isEmpty || (flushRequested && unwrittenApplied != nil) || !pendingSteps.isEmpty else { return }
            flushRequested = false
            let hadPendingSteps = !pendingSteps.isEmpty
            var steps = pendingSteps
            pendingSteps = []
            var lastWritten: LogIndex?
            for ready in batch where ready.needsPersistence || !ready.applied.isEmpty {
                steps += self.steps(for: ready, now: now)
                if let last = ready.entries.last?.index { lastWritten = max(lastWritten ?? 0, last) }
                if let snapshot = ready.snapshot { lastWritten = max(lastWritten ?? 0, snapshot.index) }
                if let compacted = ready.compactedThrough { lastWritten = max(lastWritten ?? 0, compacted) }
            }
            let mustSync = batch.contains { $0.needsPersistence } || hadPendingSteps
            // A leader's appends promise nothing about its own disk (its entries count towards a
            // majority only once `persisted` says so), so they leave before the write and the
            // followers write in parallel with it (Ongaro's thesis §10.2.1). Everything else
            // (votes, acknowledgements) waits for the disk.
            var afterWrite: [[Message<RelayStateMachine>]] = []
            for ready in batch {
                if settings.faults.injects(.acknowledgeBeforeSync) {
                    emit(.send(ready.messages))
                    afterWrite.append([])
                } else if ready.hardState == nil && mustSync {
                    let bulk = ready.messages.filter(\.isBulk)
                    if !bulk.isEmpty { emit(.send(bulk)) }
                    afterWrite.append(ready.messages.filter { !$0.isBulk })
                } else {
                    afterWrite.append(ready.messages)
                }
            }
            let write = Write(readies: batch, afterWrite: afterWrite, lastWritten: lastWritten, mustSync: mustSync, startedAt: now)
            guard mustSync || batch.isEmpty else {
                // Nothing new to make durable: keep the applied writes for the next transaction.
                stash(steps)
                complete(write, now: now)
                continue
            }
            if let applied = unwrittenApplied {
                steps.insert(.applied(index: applied.index, term: applied.term, applied.mutations), at: 0)
                unwrittenApplied = nil
            }
            self.write = write
            emit(.write(steps))
            if mustSync && settings.faults.injects(.countOwnUnsyncedEntry) {
                enqueue(raft.persisted(through: lastWritten ?? raft.durableIndex, now: now), now: now)
                roleMayHaveChanged(now: now)
            }
            return
        }
    }

    /// A batch's write is synced (or it needed none): its messages leave.
    private mutating func complete(_ write: Write, now: Int64) {
        if settings.faults.injects(.answerBeforeApplied) { answerEarly(write) }
        for messages in write.afterWrite where !messages.isEmpty { emit(.send(messages)) }
        if write.mustSync {
            enqueue(raft.persisted(through: write.lastWritten ?? raft.durableIndex, now: now), now: now)
        }
        roleMayHaveChanged(now: now)
    }

    private mutating func proposeQueued(now: Int64) {
        var expired: [Proposal] = []
        proposals.removeAll { proposal in
            guard let holdDeadline = proposal.holdDeadline, now >= holdDeadline else { return false }
            expired.append(proposal)
            return true
        }
        for proposal in expired { resolve(proposal.origin, .failure(.staleRequest), now: now) }
        guard !proposals.isEmpty else { return }
        let batch = proposals.prefix(settings.maxCommitBatchEvents).map { carryingIntent($0, now: now) }
        proposals.removeFirst(batch.count)
        guard let (indexes, ready) = raft.propose(batch.map(\.command), now: now) else {
            for proposal in batch { resolve(proposal.origin, .failure(.notLeader(leader: raft.leaderID)), now: now) }
            return
        }
        for (proposal, index) in zip(batch, indexes) {
            precondition(waiting[index] == nil, "two commands wait for log index \(index)")
            waiting[index] = Waiter(origin: proposal.origin, term: raft.term, deadline: proposal.deadline)
        }
        enqueue(ready, now: now)
    }

    /// A client's event for a key with nothing pending, proposed while this leader may deliver
    /// and the scheduler has a slot for it, carries its first attempt's intent: it is sent as
    /// soon as its entry applies, one commit round after it arrives instead of two. Anything
    /// else goes as it came, and the scheduler starts it in turn.
    private mutating func carryingIntent(_ proposal: Proposal, now: Int64) -> Proposal {
        guard case .client(let request) = proposal.origin, case .accept(let acceptance) = proposal.command,
            drain == nil, storeFailure == nil, scheduler != nil, schedulerTerm == raft.term,
            let fence = raft.deliveryFence, fence.term == raft.term, raft.mayStartDelivery(now: now),
            raft.machine.head(of: acceptance.key) == nil, raft.machine.openIntent(for: acceptance.key) == nil,
            scheduler!.mayStartWithAcceptance(acceptance.key, nowMilliseconds: now)
        else { return proposal }
        return Proposal(
            origin: .clientDelivering(request, key: acceptance.key, term: fence.term),
            command: .acceptAndOpenIntent(acceptance, term: fence.term), deadline: proposal.deadline, holdDeadline: proposal.holdDeadline)
    }

    /// One Ready's durable part as store steps, in the contract's order, with the store writes
    /// of the entries it applies before any compaction that drops them from the log.
    private mutating func steps(for ready: Ready, now: Int64) -> [StoreStep] {
        var steps: [StoreStep] = []
        if let hardState = ready.hardState { steps.append(.hardState(hardState)) }
        if let after = ready.truncateAfter { steps.append(.truncate(after: after)) }
        if !ready.entries.isEmpty { steps.append(.entries(ready.entries)) }
        if let last = ready.applied.last {
            let mutations = ready.applied.flatMap { $0.result?.effects.mutations ?? [] }
            steps.append(.applied(index: last.index, term: last.term, mutations))
            appliedThrough = max(appliedThrough, last.index)
        }
        if let snapshot = ready.snapshot {
            // From the leader: a whole new state, not one this node applied itself.
            precondition(snapshot.index > appliedThrough, "a snapshot at \(snapshot.index) installed over applied \(appliedThrough)")
            steps.append(.install(snapshot))
            appliedThrough = snapshot.index
            snapshotInstalled(at: snapshot.index, now: now)
        }
        if let compacted = ready.compactedThrough { steps.append(.compact(through: compacted)) }
        return steps
    }

    private mutating func stash(_ steps: [StoreStep]) {
        for case .applied(let index, let term, let mutations) in steps {
            if unwrittenApplied == nil { emit(.flushLater(afterMilliseconds: settings.appliedFlushDelayMilliseconds)) }
            unwrittenApplied = (index, term, (unwrittenApplied?.mutations ?? []) + mutations)
        }
    }

    /// Hands results to those waiting for them, and tells the scheduler which keys moved.
    private mutating func answer(_ applied: [Node.Applied], now: Int64) {
        var results: [(Origin, Result<CommandResult, EngineError>)] = []
        for entry in applied {
            if let waiter = waiting.removeValue(forKey: entry.index) {
                if waiter.term == entry.term, let result = entry.result?.result {
                    results.append((waiter.origin, .success(result)))
                } else {
                    results.append((waiter.origin, .failure(.outcomeUnknown("leadership changed before the entry committed"))))
                }
            }
            for key in entry.result?.effects.changedKeys ?? [] { scheduler?.keyChanged(key) }
        }
        for (origin, result) in results { resolve(origin, result, now: now) }
    }

    /// The planted bug `answerBeforeApplied`: clients hear a guessed result as soon as the
    /// leader's own disk holds their entries.
    private mutating func answerEarly(_ write: Write) {
        var guess = raft.machine
        for entry in write.readies.flatMap(\.entries) {
            guard let waiter = waiting[entry.index], let request = waiter.origin.request, let command = entry.command else {
                continue
            }
            waiting[entry.index] = nil
            emit(.answer(request, .success(guess.apply(command).result)))
        }
    }

    private mutating func snapshotInstalled(at index: LogIndex, now: Int64) {
        for waitIndex in waiting.keys.sorted() where waitIndex <= index {
            let waiter = waiting.removeValue(forKey: waitIndex)!
            resolve(waiter.origin, .failure(.outcomeUnknown("a snapshot replaced the log before the entry was seen")), now: now)
        }
    }

    private mutating func expireWaits(now: Int64) {
        for index in waiting.keys.sorted() where waiting[index]!.deadline <= now {
            let waiter = waiting.removeValue(forKey: index)!
            resolve(
                waiter.origin, .failure(.outcomeUnknown("not committed within \(settings.commitTimeoutMilliseconds) ms")), now: now)
        }
    }

    private mutating func fail(with reason: String, now: Int64) {
        storeFailure = reason
        emit(.notice(.storeFailed(reason)))
        stopDelivering()
        failEveryWaitingClient(queued: .storeFailed(reason), proposed: .storeFailed(reason), now: now)
    }

    /// The one place that answers everyone still waiting, when this node can no longer give
    /// them an outcome: `queued` for commands not yet in the log, `proposed` for entries that
    /// are in it but not known to be committed.
    private mutating func failEveryWaitingClient(queued: EngineError, proposed: EngineError, now: Int64) {
        let queuedProposals = proposals
        proposals.removeAll()
        for proposal in queuedProposals { resolve(proposal.origin, .failure(queued), now: now) }
        let waiters = waiting.sorted { $0.key < $1.key }
        waiting.removeAll()
        for (_, waiter) in waiters { resolve(waiter.origin, .failure(proposed), now: now) }
    }

    // MARK: roles and the clock

    private mutating func roleMayHaveChanged(now: Int64) {
        let role = raft.role
        if role != lastRole {
            emit(.notice(.roleChanged(from: lastRole, to: role, term: raft.term)))
            if lastRole == .leader {
                stopDelivering()
                // Entries of the lost term may still commit under the next leader, or may not:
                // answer now rather than at the commit timeout, so clients retry elsewhere at
                // once. A retry of an entry that did commit is a byte-identical duplicate.
                failEveryWaitingClient(
                    queued: .notLeader(leader: raft.leaderID),
                    proposed: .outcomeUnknown("leadership was lost before the entry committed"), now: now)
            }
            lastRole = role
        }
        if recovering && raft.mayVote {
            recovering = false
            emit(.notice(.caughtUp(applied: raft.lastApplied)))
            // Without the mark cleared, a restart would keep the node from voting.
            pendingSteps.append(.recovering(false))
        }
    }

    /// Reads the clock and notices a freeze: requests read before this moment are then stale.
    private mutating func readClock(now: Int64, ticking: Bool) {
        guard let last = lastClockReading else {
            if ticking { lastClockReading = now }
            return
        }
        let gap = now - last
        if gap > settings.freezeThresholdMilliseconds {
            lastWakeMilliseconds = now
            emit(.notice(.frozen(gapMilliseconds: gap)))
        }
        lastClockReading = max(last, now)
    }

    /// Every `catchUpReportMilliseconds` while this follower is behind its leader by more than
    /// `readinessMaxLagEntries` (or is catching up after an empty-disk start).
    private mutating func reportCatchUp(now: Int64) {
        let behind = raft.applyLag
        guard raft.role == .follower, recovering || behind > LogIndex(settings.readinessMaxLagEntries),
            now - lastCatchUpReport >= settings.catchUpReportMilliseconds
        else { return }
        lastCatchUpReport = now
        emit(
            .notice(
                .catchingUp(applied: raft.lastApplied, leaderCommit: raft.leaderCommitIndex, entriesBehind: behind, voting: raft.mayVote))
        )
    }

    // MARK: deliveries

    /// Starts what the scheduler allows now.
    private mutating func startDeliveries(now: Int64) {
        guard drain == nil, storeFailure == nil, raft.mayStartDelivery(now: now), let fence = raft.deliveryFence else { return }
        if scheduler == nil || schedulerTerm != raft.term {
            // A new term: whatever the last leader left pending starts over, in key order.
            stopDelivering()
            var fresh = DeliveryScheduler(maxInFlight: settings.deliveryConcurrency, budget: settings.deliveryBudget)
            let keys = raft.machine.keysWithPendingEvents
            for key in keys { fresh.keyChanged(key) }
            scheduler = fresh
            schedulerTerm = raft.term
            let held = keys.filter { raft.machine.openIntent(for: $0).map { $0.term < raft.term } ?? false }.count
            emit(
                .notice(
                    .deliveringAsLeader(
                        term: raft.term, pending: raft.machine.pendingCount, keys: keys.count, keysHeldForOlderRequests: held,
                        holdMilliseconds: settings.timing.intentHoldMilliseconds)))
        }
        let machine = raft.machine
        let started = scheduler!.start(
            nowMilliseconds: now, head: { machine.head(of: $0) },
            notBefore: { fence.earliestStartMilliseconds(openIntent: machine.openIntent(for: $0)) })
        for event in started { openIntent(for: event, term: fence.term, now: now) }
    }

    /// Proposes the intent of this term's attempt on `event` (per-key fencing); the send waits
    /// for it to apply.
    private mutating func openIntent(for event: QueuedEvent, term: Term, now: Int64) {
        deliveries[event.number] = .committingIntent(event, term: term)
        proposals.append(
            Proposal(
                origin: .intent(eventNumber: event.number), command: .openIntent(intent(for: event, term: term)),
                deadline: now + settings.commitTimeoutMilliseconds, holdDeadline: nil))
    }

    private func intent(for event: QueuedEvent, term: Term) -> DeliveryIntent {
        guard let fence = raft.deliveryFence, fence.term == term else { preconditionFailure("an intent proposed outside term \(term)") }
        return fence.intent(for: event)
    }

    /// The event that follows `event` on its key, when it may go on at once in `term`: this node
    /// still leads in that term with its scheduler, is not draining, and the routing key's budget
    /// has a slot free for it now (which it then spends).
    private mutating func nextAttempt(after event: QueuedEvent, term: Term, now: Int64) -> QueuedEvent? {
        guard drain == nil, storeFailure == nil, scheduler != nil, schedulerTerm == term, raft.deliveryFence?.term == term else {
            return nil
        }
        guard let next = raft.machine.event(following: event.number, of: event.key),
            scheduler!.mayContinue(event.key, nowMilliseconds: now)
        else { return nil }
        return next
    }

    /// Sends one event whose intent is applied, while the lease holds. The
    /// deadline counts from the clock reading the lease check is made at: the send starts while
    /// the lease holds, before any later leader took office, and no byte leaves after it.
    private mutating func send(_ event: QueuedEvent, term: Term, now: Int64) {
        guard raft.term == term, raft.mayStartDelivery(now: now) else {
            // The lease ran short (or leadership is gone): try again next heartbeat, with a new intent.
            deliveries[event.number] = nil
            release(event.key, retryAtMilliseconds: now + settings.timing.heartbeatIntervalMilliseconds)
            return
        }
        deliveries[event.number] = .sending(event, term: term, startedAt: now)
        emit(
            .startDelivery(
                DeliveryOrder(event: event, term: term, sendByMilliseconds: now + settings.timing.upstreamTimeoutMilliseconds)))
    }

    /// A command of this node's own, or a client's, has its result.
    private mutating func resolve(_ origin: Origin, _ result: Result<CommandResult, EngineError>, now: Int64) {
        switch origin {
        case .client(let request):
            emit(.answer(request, result))
        case .clientDelivering(let request, let key, let term):
            emit(.answer(request, result))
            guard schedulerTerm == term, scheduler != nil else { return }
            // Sent only if the entry opened this term's intent on the event it queued (it does
            // not when the event was a duplicate, suppressed, coalesced, or not first for its key).
            guard case .success(.accepted(_, let number)) = result, drain == nil,
                let intent = raft.machine.openIntent(for: key), intent.term == term, intent.eventNumber == number,
                let event = raft.machine.event(number: number), event.state == .pending
            else {
                release(key, retryAtMilliseconds: nil)
                return
            }
            send(event, term: term, now: now)
        case .intent(let number):
            guard case .committingIntent(let event, let term)? = deliveries[number] else { return }
            guard schedulerTerm == term, scheduler != nil else {
                deliveries[number] = nil
                return
            }
            switch result {
            case .success(.intentOpened):
                // Read again: while its intent waited behind the previous outcome, the event was
                // not yet first for its key, and a later event may have been coalesced into it.
                // (A purge applied in the same batch, after the intent, may have removed it.)
                guard let current = raft.machine.event(number: number), current.state == .pending else {
                    deliveries[number] = nil
                    release(event.key, retryAtMilliseconds: nil)
                    return
                }
                send(current, term: term, now: now)
            case .success:
                // Purged, or no longer first for its key: the key's next event may go.
                deliveries[number] = nil
                release(event.key, retryAtMilliseconds: nil)
            case .failure:
                deliveries[number] = nil
                release(event.key, retryAtMilliseconds: now + settings.timing.heartbeatIntervalMilliseconds)
            }
        case .outcome(let number):
            guard case .committingOutcome(let event, let term, let retryAt, let pauseUntil, let next)? = deliveries[number] else { return }
            deliveries[number] = nil
            if let next, case .committingIntent(let nextEvent, _)? = deliveries[next] {
                // The next event's intent rode in this entry: it opened if the machine holds it.
                let opened = raft.machine.openIntent(for: nextEvent.key).map { $0.eventNumber == next && $0.term == term } ?? false
                resolve(.intent(eventNumber: next), result.map { _ in opened ? .intentOpened : .eventGone }, now: now)
                return
            }
            // The key went on to its next event, whose attempt now holds it.
            guard schedulerTerm == term, scheduler != nil, next.flatMap({ deliveries[$0] }) == nil else { return }
            if case .success = result {
                scheduler!.finished(event.key, retryAtMilliseconds: retryAt, pauseRoutingKeyUntilMilliseconds: pauseUntil)
            } else {
                // Not committed in time, though this node may still lead: the attempt is tried
                // again, as the outcome may never have been recorded.
                release(event.key, retryAtMilliseconds: now + settings.timing.heartbeatIntervalMilliseconds)
            }
        }
    }

    /// Ends this term's attempt on `key` without an outcome of its own.
    private mutating func release(_ key: OrderingKey, retryAtMilliseconds: Int64?) {
        scheduler?.finished(key, retryAtMilliseconds: retryAtMilliseconds)
    }

    /// Ends this node's deliveries: a follower must not deliver, and the new leader will
    /// re-deliver whatever had no recorded outcome.
    private mutating func stopDelivering() {
        scheduler = nil
        for number in deliveries.keys.sorted() {
            if case .sending = deliveries[number]! { emit(.cancelDelivery(eventNumber: number)) }
        }
        deliveries.removeAll()
    }

    private static func detail(_ verdict: UpstreamVerdict, _ outcome: AttemptRecord.Outcome, _ response: UpstreamResponse, attempts: Int)
        -> String
    {
        let answer = response.statusCode.map { "HTTP \($0): \(response.detail)" } ?? response.detail
        switch (verdict, outcome) {
        case (.rejected, _): return "PagerDuty rejected the event: \(answer)"
        case (.retry, .deadLettered): return "gave up after \(attempts) attempts; last answer: \(answer)"
        default: return answer
        }
    }

    // MARK: shutdown

    private mutating func advanceDrain(now: Int64) {
        guard let phase = drain else { return }
        switch phase {
        case .deliveries(let deadline):
            guard deliveries.isEmpty || now >= deadline || storeFailure != nil else { return }
            if raft.role == .leader && raft.members.count > 1 && storeFailure == nil {
                drain = .handOver(deadline: now + 2 * settings.timing.minimumElectionTimeoutMilliseconds, nextAttempt: now)
            } else {
                drain = .flush
            }
            advanceDrain(now: now)
        case .handOver(let deadline, let nextAttempt):
            guard raft.role == .leader, now < deadline, storeFailure == nil else {
                drain = .flush
                return advanceDrain(now: now)
            }
            guard now >= nextAttempt, write == nil, readies.isEmpty else { return }
            let (handedOver, ready) = raft.transferLeadership(now: now)
            enqueue(ready, now: now)
            roleMayHaveChanged(now: now)
            if handedOver {
                emit(.notice(.handedOver(term: raft.term, forShutdown: !drainIsHandOverOnly)))
                drain = .flush
                return advanceDrain(now: now)
            }
            drain = .handOver(deadline: deadline, nextAttempt: now + Self.handOverRetryMilliseconds)
        case .flush:
            // Leave the tables current, so a restart has nothing to replay.
            if unwrittenApplied != nil { flushRequested = true }
            pump(now: now)
            guard storeFailure != nil || (write == nil && readies.isEmpty && unwrittenApplied == nil && pendingSteps.isEmpty) else {
                return
            }
            if drainIsHandOverOnly {
                drainIsHandOverOnly = false
                drain = nil
                emit(.notice(.handOverEnded(stillLeader: raft.role == .leader, term: raft.term)))
                return
            }
            drain = .done
            emit(.drained)
        case .done:
            return
        }
    }

    // MARK: actions

    private mutating func emit(_ action: EngineAction) { actions.append(action) }

    private mutating func takeActions() -> [EngineAction] {
        defer { actions = [] }
        return actions
    }
}
