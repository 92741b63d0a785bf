import ClusterCore
import DequeModule
import Logging
import NIOConcurrencyHelpers
import RelayCore
import RelayStore

public enum EngineError: Error, Sendable, Equatable {
    /// The store failed a write: the node no longer knows what is on disk and takes nothing more.
    case storeFailed(String)
    /// Only the leader appends; the caller hands the command to `leader` (nil: none known).
    case notLeader(leader: NodeID?)
    /// No leader became known within `leader_wait_milliseconds`.
    case noLeader
    /// The entry did not commit within `commit_timeout_milliseconds`, or leadership changed
    /// before it did: it may or may not be applied later, so the client must retry (dedup makes
    /// the retry harmless).
    case outcomeUnknown(String)
    /// The hop to the leader failed.
    case peerFailed(String)
    /// This node was frozen after the request arrived: its client has likely retried it
    /// elsewhere by now (HAProxy does after 1 s), and the client may have sent the incident's
    /// next events since. Accepting this copy late could put a trigger after its resolve.
    case staleRequest
}

/// The I/O shell around the pure cores: it feeds the Raft node (`ClusterCore.RaftNode`) with
/// client commands, peer messages and ticks, and carries out each `Ready` in the contract's
/// order: one synced SQLite transaction, then messages, then answers. A single node is a cluster
/// of one, so there is one code path. Concurrent requests share a log append and an fsync (group
/// commit), and while a write is in flight the next one gathers.
///
/// Only the leader delivers, and only while its lease allows (`mayStartDelivery`): each outcome
/// is itself a replicated command, so a new leader resumes where the old one stopped.
public actor RelayEngine {
    private struct Proposal {
        let command: RelayCommand
        let deadline: Int64
        /// A client request still waiting here at this time is refused, not proposed (see
        /// `request_hold_milliseconds`); nil for the engine's own commands.
        let holdDeadline: Int64?
        let continuation: CheckedContinuation<Result<CommandResult, EngineError>, Never>
    }

    private struct Waiter {
        let term: Term
        let deadline: Int64
        let continuation: CheckedContinuation<Result<CommandResult, EngineError>, Never>
    }

    private typealias Ready = RaftNode<RelayStateMachine>.Ready

    private var raft: RaftNode<RelayStateMachine>
    /// Exists only while this node leads with an own-term commit; rebuilt in each term.
    private var scheduler: DeliveryScheduler?
    private var schedulerTerm: Term = 0
    private let store: RelayStore
    private let upstream: UpstreamClient
    private let configuration: RelayConfiguration
    private let environment: NodeEnvironment
    private let logger: Logger
    let metrics: NodeMetrics
    private var send: @Sendable ([Message<RelayStateMachine>]) -> Void = { _ in }

    private var proposals: Deque<Proposal> = []
    private var waiting: [LogIndex: Waiter] = [:]
    private var readies: [Ready] = []
    /// Store writes of applied entries not yet in a transaction: they can wait, because the
    /// log they come from is durable and is replayed after a crash.
    private var unwrittenApplied: (index: LogIndex, term: Term, mutations: [StoreMutation], since: Int64)?
    /// Set by the clock when the applied writes have waited long enough for a transaction.
    private var flushRequested = false
    /// How long applied writes may wait for the next transaction before one is made for them
    /// alone: under load they ride along with the next entries; when idle, `queue show` and the
    /// tables catch up within this.
    static let appliedFlushDelayMilliseconds: Int64 = 50
    /// The last index whose application the shell has seen (an installed snapshot counts).
    private var appliedThrough: LogIndex
    private var writer: Task<Void, Never>?
    /// When the store write under way started: heartbeats overtake it only while it is young.
    private var writeStartedAt: Int64?
    private var lastCatchUpReport: Int64 = .min / 2
    static let catchUpReportMilliseconds: Int64 = 5_000
    private var deliveriesStopped = false
    private var deliveries: [UInt64: Task<Void, Never>] = [:]
    /// Requests on their way to or from the upstream now (the rest of `deliveries` are
    /// committing an intent or an outcome).
    private var upstreamInFlight = 0
    private var lastRole: Role = .follower
    private var recovering: Bool
    /// True until a fresh node of a cluster learns from its peers whether the cluster is new.
    public private(set) var awaitingDiskDecision: Bool
    public private(set) var storeFailure: String?
    /// The monotonic clock at the engine's last look (nil until its clock starts ticking, so
    /// that a slow startup is not taken for a freeze), and when it last found that the process
    /// had been frozen (SIGSTOP, a VM pause, a long stall): the gap between two looks.
    private var lastClockReading: Int64?
    private var lastWakeMilliseconds: Int64 = .min
    /// `drain`, waiting for the deliveries in flight to end.
    private var drainWaiter: CheckedContinuation<Void, Never>?

    /// Who leads in which term, as this node last knew it; readable without a hop onto the
    /// actor, so that a request forwarded to a leader can watch for that leader being replaced.
    struct Leadership: Sendable, Equatable {
        var term: Term
        var leader: NodeID?
    }
    nonisolated let leadership = NIOLockedValueBox(Leadership(term: 0, leader: nil))

    init(
        recovered: RelayStore.Recovered, store: RelayStore, upstream: UpstreamClient, configuration: RelayConfiguration,
        environment: NodeEnvironment, metrics: NodeMetrics, logger: Logger
    ) throws(ConfigurationError) {
        let members = try configuration.members
        let clustered = members.count > 1
        // A fresh node of a cluster may be a replacement whose old self voted: until its peers
        // say the cluster is new, it behaves as one that lost its disk.
        let awaitingDiskDecision = clustered && recovered.isFresh
        let recovering = clustered && recovered.recovering
        self.awaitingDiskDecision = awaitingDiskDecision
        self.recovering = recovering
        raft = RaftNode(
            id: configuration.nodeID, members: members.map(\.id), timing: configuration.timing, initialMachine: recovered.machine,
            durable: recovered.durable, lostDisk: recovering || awaitingDiskDecision, seed: UInt64.random(in: .min ... .max),
            now: environment.monotonicMilliseconds(), snapshotThresholdEntries: configuration.snapshotThresholdEntries)
        appliedThrough = raft.lastApplied
        self.store = store
        self.upstream = upstream
        self.configuration = configuration
        self.environment = environment
        self.metrics = metrics
        self.logger = logger
        metrics.queueDepth(pending: raft.machine.pendingCount, dead: raft.machine.deadCount)
    }

    /// Where outgoing peer messages go; set once at startup, before the first tick.
    func connect(_ send: @escaping @Sendable ([Message<RelayStateMachine>]) -> Void) { self.send = send }

    // MARK: inputs

    /// Applies a command through the log and returns its result once it is committed (on a
    /// majority of disks). Only the leader takes commands. A client's command still waiting to
    /// be proposed at `holdDeadlineMilliseconds` is refused as stale instead.
    public func submit(_ command: RelayCommand, holdDeadlineMilliseconds: Int64? = nil) async throws(EngineError) -> CommandResult {
        if let storeFailure { throw .storeFailed(storeFailure) }
        guard raft.role == .leader else { throw .notLeader(leader: raft.leaderID) }
        let deadline = environment.monotonicMilliseconds() + configuration.commitTimeoutMilliseconds
        let result = await withCheckedContinuation { continuation in
            proposals.append(
                Proposal(command: command, deadline: deadline, holdDeadline: holdDeadlineMilliseconds, continuation: continuation))
            kickWriter()
        }
        return try result.get()
    }

    /// `submit`, with the error as a value.
    func outcome(of command: RelayCommand, holdDeadlineMilliseconds: Int64? = nil) async -> Result<CommandResult, EngineError> {
        do {
            return .success(try await submit(command, holdDeadlineMilliseconds: holdDeadlineMilliseconds))
        } catch {
            return .failure(error)
        }
    }

    func receive(_ messages: [Message<RelayStateMachine>]) {
        let now = environment.monotonicMilliseconds()
        for message in messages where message.to == raft.id {
            enqueue(raft.receive(message, now: now))
        }
        roleMayHaveChanged()
    }

    /// Time passes: heartbeats, elections, expired waits, deliveries whose backoff ended.
    /// Returns milliseconds until the scheduler next needs a look.
    @discardableResult
    func tick() -> Int64? {
        let now = readClock(ticking: true)
        enqueue(raft.tick(now: now))
        roleMayHaveChanged()
        expireWaits(now: now)
        reportCatchUp(now: now)
        if let since = unwrittenApplied?.since, now - since >= Self.appliedFlushDelayMilliseconds {
            flushRequested = true
            kickWriter()
        }
        return startDeliveries()
    }

    /// Every `catchUpReportMilliseconds` while this follower is behind its leader by more than
    /// `readiness_max_lag_entries` (or is catching up after an empty-disk start), a log line
    /// says how far it has come.
    private func reportCatchUp(now: Int64) {
        let behind = raft.applyLag
        guard raft.role == .follower, recovering || behind > LogIndex(configuration.readinessMaxLagEntries),
            now - lastCatchUpReport >= Self.catchUpReportMilliseconds
        else { return }
        lastCatchUpReport = now
        logger.notice(
            "catching up with the leader",
            metadata: [
                "applied": "\(raft.lastApplied)", "leader_commit": "\(raft.leaderCommitIndex)", "entries_behind": "\(behind)",
                "voting": "\(raft.mayVote)",
            ])
    }

    /// Whether a client request that arrived at `receivedAtMilliseconds` may still be taken: not
    /// if this process was frozen since (see `EngineError.staleRequest`).
    func admitsRequest(receivedAtMilliseconds: Int64) -> Bool {
        readClock()
        return lastWakeMilliseconds == .min || receivedAtMilliseconds > lastWakeMilliseconds + environment.afterFreezeGraceMilliseconds
    }

    /// Reads the monotonic clock and notices a freeze: requests read before this moment are
    /// then stale.
    @discardableResult
    private func readClock(ticking: Bool = false) -> Int64 {
        let now = environment.monotonicMilliseconds()
        guard let last = lastClockReading else {
            if ticking { lastClockReading = now }
            return now
        }
        let gap = now - last
        if gap > environment.freezeThresholdMilliseconds {
            lastWakeMilliseconds = now
            logger.warning(
                "this process was frozen or starved; refusing client requests it read before now (their clients have retried)",
                metadata: ["gap_ms": "\(gap)"])
        }
        lastClockReading = max(last, now)
        return now
    }

    // MARK: the Ready pipeline

    private func enqueue(_ ready: Ready) {
        var ready = ready
        let writeRunning = writeStartedAt.map { environment.monotonicMilliseconds() - $0 } ?? 0
        send(ready.takeHeartbeats(writeRunningForMilliseconds: writeRunning, timing: configuration.timing))
        guard ready.needsPersistence || !ready.messages.isEmpty || !ready.applied.isEmpty else { return }
        readies.append(ready)
        kickWriter()
    }

    private func kickWriter() {
        if writer == nil && storeFailure == nil { writer = Task { await self.runWriter() } }
    }

    /// Carries out Readys in order. Durable parts of everything queued go into one transaction;
    /// only after it is synced do their messages leave and their clients hear back.
    private func runWriter() async {
        while storeFailure == nil {
            proposeQueued()
            let batch = readies
            readies = []
            guard !batch.isEmpty || (flushRequested && unwrittenApplied != nil) else { break }
            flushRequested = false
            var steps: [RelayStore.Step] = []
            var lastWritten: LogIndex?
            for ready in batch where ready.needsPersistence || !ready.applied.isEmpty {
                steps += self.steps(for: ready)
                if let last = ready.entries.last?.index { lastWritten = max(lastWritten ?? 0, last) }
                if let snapshot = ready.snapshot { lastWritten = max(lastWritten ?? 0, snapshot.index) }
            }
            let mustSync = batch.contains { $0.needsPersistence }
            // A leader's appends promise nothing about its own disk (its entries count towards a
            // majority only once `persisted` says so), so they leave before the fsync and the
            // followers write in parallel with it (Ongaro's thesis §10.2.1). Everything else
            // (votes, acknowledgements) waits for the disk.
            var afterWrite: [[Message<RelayStateMachine>]] = []
            for ready in batch {
                if ready.hardState == nil && mustSync {
                    send(ready.messages.filter(\.isBulk))
                    afterWrite.append(ready.messages.filter { !$0.isBulk })
                } else {
                    afterWrite.append(ready.messages)
                }
            }
            if mustSync || batch.isEmpty {
                if let applied = unwrittenApplied {
                    steps.insert(.applied(index: applied.index, term: applied.term, applied.mutations), at: 0)
                    unwrittenApplied = nil
                }
                writeStartedAt = environment.monotonicMilliseconds()
                defer { writeStartedAt = nil }
                do {
                    try await store.write(steps)
                } catch {
                    fail(with: "store write failed: \(error)")
                    break
                }
                metrics.commit(
                    batchSize: batch.reduce(0) { $0 + $1.entries.count },
                    durationMilliseconds: environment.monotonicMilliseconds() - (writeStartedAt ?? 0))
            } else {
                // Nothing new to make durable: keep the applied writes for the next transaction.
                stash(steps)
            }
            for (ready, messages) in zip(batch, afterWrite) {
                send(messages)
                answer(ready.applied)
            }
            if mustSync {
                enqueue(raft.persisted(through: lastWritten ?? raft.durableIndex, now: environment.monotonicMilliseconds()))
            }
            roleMayHaveChanged()
            metrics.queueDepth(pending: raft.machine.pendingCount, dead: raft.machine.deadCount)
            startDeliveries()
        }
        writer = nil
    }

    private func proposeQueued() {
        let now = environment.monotonicMilliseconds()
        proposals.removeAll { proposal in
            guard let holdDeadline = proposal.holdDeadline, now >= holdDeadline else { return false }
            proposal.continuation.resume(returning: .failure(.staleRequest))
            return true
        }
        guard !proposals.isEmpty else { return }
        let batch = proposals.prefix(configuration.maxCommitBatchEvents)
        proposals.removeFirst(batch.count)
        guard let (indexes, ready) = raft.propose(batch.map(\.command), now: environment.monotonicMilliseconds()) else {
            for proposal in batch { proposal.continuation.resume(returning: .failure(.notLeader(leader: raft.leaderID))) }
            return
        }
        for (proposal, index) in zip(batch, indexes) {
            waiting[index] = Waiter(term: raft.term, deadline: proposal.deadline, continuation: proposal.continuation)
        }
        enqueue(ready)
    }

    /// One Ready's durable part as store steps, in the contract's order, with the store writes
    /// of the entries it applies before any compaction that drops them from the log.
    private func steps(for ready: Ready) -> [RelayStore.Step] {
        var steps: [RelayStore.Step] = []
        if let hardState = ready.hardState { steps.append(.hardState(hardState)) }
        if let after = ready.truncateAfter { steps.append(.truncate(after: after)) }
        if !ready.entries.isEmpty { steps.append(.entries(ready.entries)) }
        if let last = ready.applied.last {
            let mutations = ready.applied.flatMap { $0.result?.effects.mutations ?? [] }
            steps.append(.applied(index: last.index, term: last.term, mutations))
            appliedThrough = max(appliedThrough, last.index)
        }
        if let snapshot = ready.snapshot {
            if snapshot.index > appliedThrough {
                // From the leader: a whole new state, not one this node applied itself.
                steps.append(.install(snapshot))
                appliedThrough = snapshot.index
                snapshotInstalled(at: snapshot.index)
            } else {
                steps.append(.compact(through: snapshot.index))
            }
        }
        return steps
    }

    private func stash(_ steps: [RelayStore.Step]) {
        for case .applied(let index, let term, let mutations) in steps {
            unwrittenApplied = (
                index, term, (unwrittenApplied?.mutations ?? []) + mutations,
                unwrittenApplied?.since ?? environment.monotonicMilliseconds()
            )
        }
    }

    /// Hands results to the clients waiting for them, and tells the scheduler which keys moved.
    private func answer(_ applied: [RaftNode<RelayStateMachine>.Applied]) {
        for entry in applied {
            if let waiter = waiting.removeValue(forKey: entry.index) {
                if waiter.term == entry.term, let result = entry.result?.result {
                    waiter.continuation.resume(returning: .success(result))
                } else {
                    waiter.continuation.resume(returning: .failure(.outcomeUnknown("leadership changed before the entry committed")))
                }
            }
            for key in entry.result?.effects.changedKeys ?? [] { scheduler?.keyChanged(key) }
        }
    }

    private func snapshotInstalled(at index: LogIndex) {
        for (waitIndex, waiter) in waiting where waitIndex <= index {
            waiting[waitIndex] = nil
            waiter.continuation.resume(returning: .failure(.outcomeUnknown("a snapshot replaced the log before the entry was seen")))
        }
    }

    private func expireWaits(now: Int64) {
        for (index, waiter) in waiting where waiter.deadline <= now {
            waiting[index] = nil
            waiter.continuation.resume(
                returning: .failure(.outcomeUnknown("not committed within \(configuration.commitTimeoutMilliseconds) ms")))
        }
    }

    /// After a failed write the in-memory state is ahead of the disk. The node stops taking
    /// commands and delivering, and says so on `/healthz`, so a supervisor restarts it from disk.
    private func fail(with reason: String) {
        storeFailure = reason
        logger.critical("the store failed; refusing all further work until restarted", metadata: ["error": "\(reason)"])
        failEveryWaitingClient(queued: .storeFailed(reason), proposed: .storeFailed(reason))
        stopDelivering()
    }

    /// The one place that answers every client still waiting, when this node can no longer
    /// give them an outcome: `queued` for commands not yet in the log, `proposed` for entries
    /// that are in it but not known to be committed.
    private func failEveryWaitingClient(queued: EngineError, proposed: EngineError) {
        for proposal in proposals { proposal.continuation.resume(returning: .failure(queued)) }
        proposals.removeAll()
        for waiter in waiting.values { waiter.continuation.resume(returning: .failure(proposed)) }
        waiting.removeAll()
    }

    // MARK: roles

    private func roleMayHaveChanged() {
        let known = Leadership(term: raft.term, leader: raft.leaderID)
        leadership.withLockedValue { if $0 != known { $0 = known } }
        let role = raft.role
        if role != lastRole {
            logger.notice(
                "role changed", metadata: ["from": "\(lastRole.rawValue)", "to": "\(role.rawValue)", "term": "\(raft.term)"])
            metrics.role(role)
            if lastRole == .leader {
                stopDelivering()
                // Entries of the lost term may still commit under the next leader, or may not:
                // answer now rather than at the commit timeout, so clients retry elsewhere at
                // once. A retry of an entry that did commit is a byte-identical duplicate.
                failEveryWaitingClient(
                    queued: .notLeader(leader: raft.leaderID),
                    proposed: .outcomeUnknown("leadership was lost before the entry committed"))
            }
            lastRole = role
        }
        if recovering && raft.mayVote {
            recovering = false
            logger.notice("caught up after an empty-disk start; voting again", metadata: ["applied": "\(raft.lastApplied)"])
            Task { await self.markCaughtUp() }
        }
    }

    /// Clears the on-disk mark of an empty-disk start once this node may vote again. A failed
    /// write is a store failure like any other: without the mark cleared, a restart would keep
    /// the node from voting, and a disk that fails here fails the next write too.
    private func markCaughtUp() async {
        do {
            try await store.write([.recovering(false)])
        } catch {
            fail(with: "store write failed: \(error)")
        }
    }

    /// Ends this node's deliveries: a follower must not deliver, and the new leader will
    /// re-deliver whatever had no recorded outcome.
    private func stopDelivering() {
        scheduler = nil
        for task in deliveries.values { task.cancel() }
    }

    // MARK: deliveries

    /// Starts what the scheduler allows now; returns when it next needs to look again.
    @discardableResult
    private func startDeliveries() -> Int64? {
        let now = environment.monotonicMilliseconds()
        guard !deliveriesStopped, storeFailure == nil, raft.mayStartDelivery(now: now) else { return nil }
        if scheduler == nil || schedulerTerm != raft.term {
            // A new term: whatever the last leader left pending starts over, in key order.
            var fresh = DeliveryScheduler(maxInFlight: configuration.deliveryConcurrency)
            let keys = raft.machine.keysWithPendingEvents
            for key in keys { fresh.keyChanged(key) }
            scheduler = fresh
            schedulerTerm = raft.term
            let held = keys.filter { raft.machine.openIntent(for: $0).map { $0.term < raft.term } ?? false }.count
            logger.notice(
                "delivering as leader",
                metadata: [
                    "term": "\(raft.term)", "pending": "\(raft.machine.pendingCount)", "keys": "\(keys.count)",
                    "keys_held_for_older_requests": "\(held)", "hold_ms": "\(configuration.timing.intentHoldMilliseconds)",
                ])
        }
        let machine = raft.machine
        let term = raft.term
        guard let fence = raft.deliveryFence else { return nil }
        let started = scheduler!.start(
            nowMilliseconds: now, head: { machine.head(of: $0) },
            notBefore: { fence.earliestStartMilliseconds(openIntent: machine.openIntent(for: $0)) })
        for event in started {
            deliveries[event.number] = Task { await self.deliver(event, term: term, intent: fence.intent(for: event)) }
        }
        return scheduler!.nextWakeMilliseconds.map { max($0 - now, 0) }
    }

    /// One attempt: commit the intent (in a cluster), send while the lease holds, commit the
    /// outcome. The key stays in flight in the scheduler throughout.
    private func deliver(_ event: QueuedEvent, term: Term, intent: DeliveryIntent?) async {
        defer {
            deliveries[event.number] = nil
            if deliveries.isEmpty { endDrainWait() }
        }
        if let intent {
            let opened = await outcome(of: .openIntent(intent))
            guard schedulerTerm == term, scheduler != nil else { return }
            switch opened {
            case .success(.intentOpened): break
            case .success:
                // Purged, or no longer first for its key: the key's next event may go.
                return release(event.key, retryAtMilliseconds: nil)
            case .failure:
                return release(
                    event.key, retryAtMilliseconds: environment.monotonicMilliseconds() + configuration.heartbeatIntervalMilliseconds)
            }
        }
        // The deadline counts from the clock reading the lease check is made at: the send starts
        // while the lease holds, before any later leader took office, and no byte leaves after
        // the deadline (`DeadlineGuardedBytes`, which reads the same clock).
        let started = environment.monotonicMilliseconds()
        let sendBy = started + configuration.upstreamTimeoutMilliseconds
        guard raft.term == term, raft.mayStartDelivery(now: started) else {
            // The lease ran short (or leadership is gone): try again next heartbeat, with a new intent.
            return release(event.key, retryAtMilliseconds: started + configuration.heartbeatIntervalMilliseconds)
        }
        upstreamInFlight += 1
        metrics.upstreamInFlight(upstreamInFlight)
        let response = await upstream.send(event, term: term, sendByMilliseconds: sendBy)
        upstreamInFlight -= 1
        metrics.upstreamInFlight(upstreamInFlight)
        let finished = environment.monotonicMilliseconds()
        metrics.upstreamRequest(durationMilliseconds: finished - started)
        let verdict = UpstreamVerdict.classify(statusCode: response.statusCode, retryAfter: response.retryAfter)
        let outcome = verdict.outcome(attemptsBefore: event.attempts, policy: configuration.retry)
        let attempt = AttemptRecord(
            outcome: outcome, atMilliseconds: environment.wallClockMilliseconds(), durationMilliseconds: finished - started,
            statusCode: response.statusCode, detail: Self.detail(verdict, outcome, response, attempts: event.attempts + 1))
        log(attempt, of: event, term: term)
        metrics.attempt(
            outcome, statusCode: response.statusCode, latencyMilliseconds: attempt.atMilliseconds - event.receivedAtMilliseconds)
        // The outcome is committed before the key's next event may start: after a crash or a
        // failover the relay must never re-send this event behind a later one.
        let recorded = await self.outcome(of: .recordAttempt(eventNumber: event.number, attempt))
        guard schedulerTerm == term, scheduler != nil else { return }
        guard case .success = recorded else {
            // Not committed in time, though this node still leads: the attempt is tried again,
            // as the outcome may never have been recorded.
            return release(event.key, retryAtMilliseconds: finished + configuration.heartbeatIntervalMilliseconds)
        }
        var retryAt: Int64?
        var pauseRoutingKeyUntil: Int64?
        if outcome == .retry, case .retry(let retryAfter) = verdict {
            let backoff = configuration.retry.backoffMilliseconds(
                afterAttempts: event.attempts + 1, jitter: environment.jitter(), retryAfterMilliseconds: retryAfter)
            retryAt = finished + backoff
            if response.statusCode == 429 { pauseRoutingKeyUntil = retryAt }
        }
        scheduler?.finished(event.key, retryAtMilliseconds: retryAt, pauseRoutingKeyUntilMilliseconds: pauseRoutingKeyUntil)
        startDeliveries()
    }

    /// Ends this term's attempt on `key` without an outcome of its own.
    private func release(_ key: OrderingKey, retryAtMilliseconds: Int64?) {
        scheduler?.finished(key, retryAtMilliseconds: retryAtMilliseconds)
        startDeliveries()
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

    private func log(_ attempt: AttemptRecord, of event: QueuedEvent, term: Term) {
        let metadata: Logger.Metadata = [
            "event": "\(event.number)", "key": "\(event.key)", "action": "\(event.action.rawValue)",
            "attempt": "\(event.attempts + 1)", "status": "\(attempt.statusCode.map(String.init) ?? "none")",
            "duration_ms": "\(attempt.durationMilliseconds)", "term": "\(term)", "detail": "\(attempt.detail)",
        ]
        switch attempt.outcome {
        case .delivered: logger.info("delivered", metadata: metadata)
        case .retry: logger.warning("delivery failed; will retry", metadata: metadata)
        case .deadLettered: logger.error("dead-lettered", metadata: metadata)
        }
    }

    // MARK: shutdown

    /// Graceful shutdown: stop starting deliveries and wait for those in flight (each bounded by
    /// the upstream timeout) so their outcomes are committed; then, if leading, hand leadership
    /// to an up-to-date follower so the cluster does not wait out an election timeout. What is
    /// left stays pending, on disk and on the other nodes.
    func drain() async {
        deliveriesStopped = true
        // Each delivery ends by the upstream timeout; committing its outcome needs a majority,
        // which may be gone (the last node of a cluster stopping): wait for that only so long.
        let waitMilliseconds = configuration.upstreamTimeoutMilliseconds + 2 * configuration.electionTimeoutMilliseconds
        if !deliveries.isEmpty {
            // Woken by the last delivery to end, or by the deadline, whichever comes first.
            let deadline = Task {
                // Cancelled once the last delivery has woken `drain`: nothing is left to wake.
                do { try await Task.sleep(for: .milliseconds(waitMilliseconds)) } catch { return }
                await self.endDrainWait()
            }
            await withCheckedContinuation { drainWaiter = $0 }
            deadline.cancel()
        }
        if raft.role == .leader && raft.members.count > 1 {
            let deadline = environment.monotonicMilliseconds() + 2 * configuration.electionTimeoutMilliseconds
            while raft.role == .leader && environment.monotonicMilliseconds() < deadline {
                await waitForWriter()
                let (handedOver, ready) = raft.transferLeadership(now: environment.monotonicMilliseconds())
                enqueue(ready)
                roleMayHaveChanged()
                if handedOver {
                    logger.notice("handed leadership over for shutdown", metadata: ["term": "\(raft.term)"])
                    break
                }
                try? await Task.sleep(for: .milliseconds(20))
            }
        }
        await waitForWriter()
        // Leave the tables current, so a restart has nothing to replay.
        flushRequested = true
        kickWriter()
        await waitForWriter()
    }

    /// Wakes `drain`, if it waits for the deliveries in flight. Runs on the actor, so the last
    /// delivery and the deadline cannot both resume it.
    private func endDrainWait() {
        drainWaiter?.resume()
        drainWaiter = nil
    }

    private func waitForWriter() async {
        while let writer { await writer.value }
    }

    // MARK: disk decision for a fresh node

    /// The cluster is new (enough peers are fresh too): this node's empty disk forgot nothing.
    func diskDecided(clusterIsNew: Bool) async {
        guard awaitingDiskDecision else { return }
        awaitingDiskDecision = false
        if clusterIsNew && raft.term == 0 && raft.lastLogIndex == 0 {
            raft = RaftNode(
                id: raft.id, members: raft.members, timing: raft.timing, initialMachine: raft.machine, durable: nil,
                seed: UInt64.random(in: .min ... .max), now: environment.monotonicMilliseconds(),
                snapshotThresholdEntries: configuration.snapshotThresholdEntries)
            logger.notice("a new cluster: starting with an empty log")
        } else {
            recovering = true
            logger.notice("this node's disk is empty but the cluster has history: not voting until caught up")
        }
        do {
            try await store.write([.hardState(raft.hardState), .recovering(recovering)])
        } catch {
            fail(with: "store write failed: \(error)")
        }
    }

    // MARK: queries

    var queuedCount: Int { raft.machine.queuedCount }

    func probeStore() async -> String? {
        if let storeFailure { return storeFailure }
        do {
            try await store.probeWritable(atMilliseconds: environment.wallClockMilliseconds())
            return nil
        } catch {
            return "\(error)"
        }
    }

    struct ClusterView: Sendable {
        let nodeID: NodeID
        let role: Role
        let term: Term
        let leaderID: NodeID?
        let leaseRemainingMilliseconds: Int64
        let commitIndex: LogIndex
        let appliedIndex: LogIndex
        let lastLogIndex: LogIndex
        let snapshotIndex: LogIndex
        let applyLag: LogIndex
        let hasQuorumContact: Bool
        let mayVote: Bool
        let awaitingDiskDecision: Bool
        let peers: [RaftNode<RelayStateMachine>.PeerProgress]
        let nowMilliseconds: Int64
    }

    func clusterView() -> ClusterView {
        let now = environment.monotonicMilliseconds()
        return ClusterView(
            nodeID: raft.id, role: raft.role, term: raft.term, leaderID: raft.leaderID,
            leaseRemainingMilliseconds: raft.leaseRemainingMilliseconds(now: now), commitIndex: raft.commitIndex,
            appliedIndex: raft.lastApplied, lastLogIndex: raft.lastLogIndex, snapshotIndex: raft.snapshotIndex, applyLag: raft.applyLag,
            hasQuorumContact: raft.hasQuorumContact(now: now), mayVote: raft.mayVote, awaitingDiskDecision: awaitingDiskDecision,
            peers: raft.peerProgress, nowMilliseconds: now)
    }

    func status() -> QueueStatus {
        let machine = raft.machine
        var byRoutingKey: [String: QueueStatus.RoutingKeyCounts] = [:]
        for event in machine.events(matching: EventFilter(), limit: .max) {
            let masked = RoutingKeyMask.mask(event.key.routingKey)
            var counts = byRoutingKey[masked, default: .init(routingKey: masked)]
            if event.state == .pending { counts.pending += 1 } else { counts.dead += 1 }
            byRoutingKey[masked] = counts
        }
        return QueueStatus(
            pending: machine.pendingCount, dead: machine.deadCount, inFlight: scheduler?.inFlightCount ?? 0,
            dedupKeys: machine.dedupKeyCount, maxQueuedEvents: configuration.queue.maxQueuedEvents,
            routingKeys: byRoutingKey.values.sorted { $0.routingKey < $1.routingKey })
    }

    func events(matching filter: EventFilter, limit: Int) -> [QueuedEvent] {
        raft.machine.events(matching: filter, limit: limit)
    }

    func attempts(of eventNumber: UInt64) async throws -> [AttemptRecord] {
        try await store.attempts(eventNumber: eventNumber)
    }
}
