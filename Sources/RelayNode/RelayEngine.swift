import DequeModule
import Logging
import RelayCore
import RelayStore

public enum EngineError: Error, Sendable, Equatable {
    /// The store failed a write: the node no longer knows what is on disk and takes nothing more.
    case storeFailed(String)
    /// The node is shutting down.
    case stopping
}

/// The I/O shell around the pure core. It batches client commands into one SQLite transaction
/// (group commit), answers each only after that transaction is synced, and runs the deliveries
/// the scheduler picks. An actor, so the state machine and scheduler are touched by one task at a
/// time; the blocking fsync runs on the store's own thread.
public actor RelayEngine {
    private struct Proposal {
        let command: RelayCommand
        let continuation: CheckedContinuation<Result<CommandResult, EngineError>, Never>
    }

    private var machine: RelayStateMachine
    private var scheduler: DeliveryScheduler
    private let store: RelayStore
    private let upstream: UpstreamClient
    private let configuration: RelayConfiguration
    private let environment: NodeEnvironment
    private let logger: Logger
    let metrics: NodeMetrics
    private var proposals: Deque<Proposal> = []
    /// The task writing batches, while there are proposals to write.
    private var committer: Task<Void, Never>?
    private var stopping = false
    private var deliveries: [UInt64: Task<Void, Never>] = [:]
    public private(set) var storeFailure: String?

    init(
        contents: RelayStore.Contents, store: RelayStore, upstream: UpstreamClient, configuration: RelayConfiguration,
        environment: NodeEnvironment, metrics: NodeMetrics, logger: Logger
    ) {
        machine = RelayStateMachine(
            limits: configuration.queue, events: contents.events, dedupEntries: contents.dedupEntries,
            nextEventNumber: contents.nextEventNumber)
        scheduler = DeliveryScheduler(maxInFlight: configuration.deliveryConcurrency)
        for key in machine.keysWithPendingEvents { scheduler.keyChanged(key) }
        self.store = store
        self.upstream = upstream
        self.configuration = configuration
        self.environment = environment
        self.metrics = metrics
        self.logger = logger
        metrics.queueDepth(pending: machine.pendingCount, dead: machine.deadCount)
    }

    // MARK: commands

    /// Applies a command and returns its result once its writes are synced to disk.
    public func submit(_ command: RelayCommand) async throws(EngineError) -> CommandResult {
        if let storeFailure { throw .storeFailed(storeFailure) }
        let result = await withCheckedContinuation { continuation in
            proposals.append(Proposal(command: command, continuation: continuation))
            if committer == nil { committer = Task { await self.commitProposals() } }
        }
        return try result.get()
    }

    /// Group commit: every proposal that arrived while the previous transaction was syncing goes
    /// into the next one, so one fsync serves many clients.
    private func commitProposals() async {
        while !proposals.isEmpty {
            let batch = proposals.prefix(configuration.maxCommitBatchEvents)
            proposals.removeFirst(batch.count)
            var effects = RelayStateMachine.Effects()
            let results = batch.map { machine.apply($0.command, effects: &effects) }
            do {
                try await store.commit(effects.mutations)
            } catch {
                fail(with: "store write failed: \(error)", pending: Array(batch))
                break
            }
            metrics.commit(batchSize: batch.count)
            metrics.queueDepth(pending: machine.pendingCount, dead: machine.deadCount)
            for (proposal, result) in zip(batch, results) { proposal.continuation.resume(returning: .success(result)) }
            for key in effects.changedKeys { scheduler.keyChanged(key) }
            startDeliveries()
        }
        committer = nil
    }

    /// After a failed write the in-memory state is ahead of the disk. The node stops taking
    /// commands and delivering, and says so on `/healthz`, so a supervisor restarts it from disk.
    private func fail(with reason: String, pending batch: [Proposal]) {
        storeFailure = reason
        logger.critical("the store failed; refusing all further work until restarted", metadata: ["error": "\(reason)"])
        for proposal in batch + proposals { proposal.continuation.resume(returning: .failure(.storeFailed(reason))) }
        proposals.removeAll()
    }

    // MARK: deliveries

    /// Starts what the scheduler allows now; returns when it next needs to look again.
    @discardableResult
    func startDeliveries() -> Int64? {
        guard !stopping, storeFailure == nil else { return nil }
        let now = environment.monotonicMilliseconds()
        for event in scheduler.start(nowMilliseconds: now, head: { self.machine.head(of: $0) }) {
            deliveries[event.number] = Task { await self.deliver(event) }
        }
        return scheduler.nextWakeMilliseconds.map { max($0 - now, 0) }
    }

    private func deliver(_ event: QueuedEvent) async {
        defer { deliveries[event.number] = nil }
        let started = environment.monotonicMilliseconds()
        let response = await upstream.send(event)
        let finished = environment.monotonicMilliseconds()
        let verdict = UpstreamVerdict.classify(statusCode: response.statusCode, retryAfter: response.retryAfter)
        let outcome = verdict.outcome(attemptsBefore: event.attempts, policy: configuration.retry)
        let attempt = AttemptRecord(
            outcome: outcome, atMilliseconds: environment.wallClockMilliseconds(), durationMilliseconds: finished - started,
            statusCode: response.statusCode, detail: Self.detail(verdict, outcome, response, attempts: event.attempts + 1))
        log(attempt, of: event)
        metrics.attempt(
            outcome, statusCode: response.statusCode, latencyMilliseconds: attempt.atMilliseconds - event.receivedAtMilliseconds)
        // The outcome is durable before the key's next event may start: after a crash the
        // relay must never re-send this event behind a later one.
        guard (try? await submit(.recordAttempt(eventNumber: event.number, attempt))) != nil else { return }
        var retryAt: Int64?
        var pauseRoutingKeyUntil: Int64?
        if outcome == .retry, case .retry(let retryAfter) = verdict {
            let backoff = configuration.retry.backoffMilliseconds(
                afterAttempts: event.attempts + 1, jitter: environment.jitter(), retryAfterMilliseconds: retryAfter)
            retryAt = finished + backoff
            if response.statusCode == 429 { pauseRoutingKeyUntil = retryAt }
        }
        scheduler.finished(event.key, retryAtMilliseconds: retryAt, pauseRoutingKeyUntilMilliseconds: pauseRoutingKeyUntil)
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

    private func log(_ attempt: AttemptRecord, of event: QueuedEvent) {
        let metadata: Logger.Metadata = [
            "event": "\(event.number)", "key": "\(event.key)", "action": "\(event.action.rawValue)",
            "attempt": "\(event.attempts + 1)", "status": "\(attempt.statusCode.map(String.init) ?? "none")",
            "duration_ms": "\(attempt.durationMilliseconds)", "detail": "\(attempt.detail)",
        ]
        switch attempt.outcome {
        case .delivered: logger.info("delivered", metadata: metadata)
        case .retry: logger.warning("delivery failed; will retry", metadata: metadata)
        case .deadLettered: logger.error("dead-lettered", metadata: metadata)
        }
    }

    /// Stops starting deliveries and waits for those in flight (each bounded by the upstream
    /// timeout) so their outcomes are recorded. What is left stays pending on disk.
    func drain() async {
        stopping = true
        while let task = deliveries.values.first { await task.value }
        while let committer { await committer.value }
    }

    // MARK: queries

    var queuedCount: Int { machine.queuedCount }

    func probeStore() async -> String? {
        if let storeFailure { return storeFailure }
        do {
            try await store.probeWritable(atMilliseconds: environment.wallClockMilliseconds())
            return nil
        } catch {
            return "\(error)"
        }
    }

    func status() -> QueueStatus {
        var byRoutingKey: [String: QueueStatus.RoutingKeyCounts] = [:]
        for event in machine.events(matching: EventFilter(), limit: .max) {
            let masked = RoutingKeyMask.mask(event.key.routingKey)
            var counts = byRoutingKey[masked, default: .init(routingKey: masked)]
            if event.state == .pending { counts.pending += 1 } else { counts.dead += 1 }
            byRoutingKey[masked] = counts
        }
        return QueueStatus(
            pending: machine.pendingCount, dead: machine.deadCount, inFlight: scheduler.inFlightCount,
            dedupKeys: machine.dedupKeyCount, maxQueuedEvents: configuration.queue.maxQueuedEvents,
            routingKeys: byRoutingKey.values.sorted { $0.routingKey < $1.routingKey })
    }

    func events(matching filter: EventFilter, limit: Int) -> [QueuedEvent] {
        machine.events(matching: filter, limit: limit)
    }

    func attempts(of eventNumber: UInt64) async throws -> [AttemptRecord] {
        try await store.attempts(eventNumber: eventNumber)
    }
}
