import ClusterCore
import EngineCore
import Logging
import NIOConcurrencyHelpers
import RelayCore
import RelayStore

/// The I/O shell around the engine's pure core (`EngineCore.EngineStateMachine`): it feeds the
/// core with client commands, peer messages, ticks, finished writes and upstream answers, and
/// carries out the actions it returns: SQLite writes, peer messages, answers to waiting
/// clients, upstream requests, log lines and metrics. Every decision is the core's; the
/// simulator runs the same core against a simulated world.
public actor RelayEngine {
    private var core: EngineStateMachine
    private let store: RelayStore
    private let upstream: UpstreamClient
    private let configuration: RelayConfiguration
    private let environment: NodeEnvironment
    private let logger: Logger
    let metrics: NodeMetrics
    private var send: @Sendable ([Message<RelayStateMachine>]) -> Void = { _ in }

    /// Clients waiting for their command's result, by the id the core answers with.
    private var clients: [RequestID: CheckedContinuation<Result<CommandResult, EngineError>, Never>] = [:]
    private var nextRequestID: RequestID = 1
    /// Upstream requests under way, by event number.
    private var deliveries: [UInt64: Task<Void, Never>] = [:]
    private var upstreamInFlight = 0
    /// `drain`, waiting for the core's `drained`.
    private var drainWaiter: CheckedContinuation<Void, Never>?
    private var drained = false

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
        let raft = RaftNode(
            id: configuration.nodeID, members: members.map(\.id), timing: configuration.timing, initialMachine: recovered.machine,
            durable: recovered.durable, lostDisk: recovering || awaitingDiskDecision, seed: environment.seed(),
            now: environment.monotonicMilliseconds(), snapshotThresholdEntries: configuration.snapshotThresholdEntries)
        core = EngineStateMachine(
            raft: raft, settings: try configuration.engineSettings(environment), recovering: recovering,
            awaitingDiskDecision: awaitingDiskDecision)
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

    public var storeFailure: String? { core.storeFailure }
    public var awaitingDiskDecision: Bool { core.awaitingDiskDecision }

    // MARK: inputs

    /// Applies a command through the log and returns its result once it is committed (on a
    /// majority of disks). Only the leader takes commands. A client's command still waiting to
    /// be proposed at `holdDeadlineMilliseconds` is refused as stale instead.
    public func submit(_ command: RelayCommand, holdDeadlineMilliseconds: Int64? = nil) async throws(EngineError) -> CommandResult {
        let request = nextRequestID
        nextRequestID += 1
        let result = await withCheckedContinuation { continuation in
            clients[request] = continuation
            execute(
                core.submit(
                    command, request: request, holdDeadlineMilliseconds: holdDeadlineMilliseconds,
                    now: environment.monotonicMilliseconds()))
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
        execute(core.receive(messages, now: environment.monotonicMilliseconds()))
    }

    /// Time passes: heartbeats, elections, expired waits, deliveries whose backoff ended.
    func tick() {
        execute(core.tick(now: environment.monotonicMilliseconds()))
    }

    /// Whether a client request that arrived at `receivedAtMilliseconds` may still be taken: not
    /// if this process was frozen since (see `EngineError.staleRequest`).
    func admitsRequest(receivedAtMilliseconds: Int64) -> Bool {
        let (admitted, actions) = core.admitsRequest(
            receivedAtMilliseconds: receivedAtMilliseconds, now: environment.monotonicMilliseconds())
        execute(actions)
        return admitted
    }

    /// The cluster is new (enough peers are fresh too): this node's empty disk forgot nothing.
    func diskDecided(clusterIsNew: Bool) {
        execute(core.diskDecided(clusterIsNew: clusterIsNew, seed: environment.seed(), now: environment.monotonicMilliseconds()))
    }

    /// An operator's handover; false when this node does not lead a cluster (or is draining).
    func handOver() -> Bool {
        let (started, actions) = core.startHandOver(now: environment.monotonicMilliseconds())
        execute(actions)
        return started
    }

    /// Graceful shutdown: the core lets deliveries in flight end (so their outcomes are
    /// committed), hands leadership over if leading, and makes the tables current. What is left
    /// stays pending, on disk and on the other nodes.
    func drain() async {
        execute(core.startDrain(now: environment.monotonicMilliseconds()))
        guard !drained else { return }
        await withCheckedContinuation { drainWaiter = $0 }
    }

    // MARK: carrying out actions

    private func execute(_ actions: [EngineAction]) {
        for action in actions {
            switch action {
            case .write(let steps):
                Task { await self.write(steps) }
            case .send(let messages):
                send(messages)
            case .answer(let request, let result):
                clients.removeValue(forKey: request)?.resume(returning: result)
            case .startDelivery(let order):
                deliveries[order.event.number] = Task { await self.deliver(order) }
            case .cancelDelivery(let eventNumber):
                deliveries.removeValue(forKey: eventNumber)?.cancel()
            case .flushLater(let afterMilliseconds):
                Task {
                    // Cancellation cannot reach this task; a failed sleep only flushes early.
                    do { try await Task.sleep(for: .milliseconds(afterMilliseconds)) } catch {}
                    await self.flush()
                }
            case .drained:
                drained = true
                drainWaiter?.resume()
                drainWaiter = nil
            case .notice(let notice):
                report(notice)
            }
        }
        let machine = core.raft.machine
        metrics.queueDepth(pending: machine.pendingCount, dead: machine.deadCount)
        let known = Leadership(term: core.raft.term, leader: core.raft.leaderID)
        leadership.withLockedValue { if $0 != known { $0 = known } }
    }

    private func write(_ steps: [StoreStep]) async {
        do {
            try await store.write(steps)
            execute(core.writeCompleted(now: environment.monotonicMilliseconds()))
        } catch {
            execute(core.writeFailed("store write failed: \(error)", now: environment.monotonicMilliseconds()))
        }
    }

    private func flush() {
        execute(core.flush(now: environment.monotonicMilliseconds()))
    }

    /// One upstream request; no byte leaves after the order's deadline (`DeadlineGuardedBytes`,
    /// which reads the same clock).
    private func deliver(_ order: DeliveryOrder) async {
        let started = environment.monotonicMilliseconds()
        upstreamInFlight += 1
        metrics.upstreamInFlight(upstreamInFlight)
        let response = await upstream.send(order.event, term: order.term, sendByMilliseconds: order.sendByMilliseconds)
        upstreamInFlight -= 1
        metrics.upstreamInFlight(upstreamInFlight)
        let finished = environment.monotonicMilliseconds()
        metrics.upstreamRequest(durationMilliseconds: finished - started)
        // Cancelled: the core abandoned this request, and the event may be under way again.
        guard !Task.isCancelled else { return }
        deliveries[order.event.number] = nil
        execute(
            core.deliveryFinished(
                eventNumber: order.event.number, response: response, now: finished,
                wallClockMilliseconds: environment.wallClockMilliseconds(), jitter: environment.jitter()))
    }

    private func report(_ notice: EngineNotice) {
        switch notice {
        case .roleChanged(let from, let to, let term):
            logger.notice("role changed", metadata: ["from": "\(from.rawValue)", "to": "\(to.rawValue)", "term": "\(term)"])
            metrics.role(to)
        case .applied:
            break
        case .deliveringAsLeader(let term, let pending, let keys, let held, let holdMilliseconds):
            logger.notice(
                "delivering as leader",
                metadata: [
                    "term": "\(term)", "pending": "\(pending)", "keys": "\(keys)", "keys_held_for_older_requests": "\(held)",
                    "hold_ms": "\(holdMilliseconds)",
                ])
        case .attempt(let attempt, let event, let term):
            let problem = attempt.outcome == .delivered ? nil : Self.problem(attempt, routingKey: event.key.routingKey)
            log(attempt, of: event, term: term, problem: problem)
            metrics.attempt(attempt, latencyMilliseconds: attempt.atMilliseconds - event.receivedAtMilliseconds, problem: problem)
        case .committed(let entries, let durationMilliseconds):
            metrics.commit(batchSize: entries, durationMilliseconds: durationMilliseconds)
        case .catchingUp(let applied, let leaderCommit, let behind, let voting):
            logger.notice(
                "catching up with the leader",
                metadata: [
                    "applied": "\(applied)", "leader_commit": "\(leaderCommit)", "entries_behind": "\(behind)", "voting": "\(voting)",
                ])
        case .caughtUp(let applied):
            logger.notice("caught up after an empty-disk start; voting again", metadata: ["applied": "\(applied)"])
        case .frozen(let gap):
            logger.warning(
                "this process was frozen or starved; refusing client requests it read before now (their clients have retried)",
                metadata: ["gap_ms": "\(gap)"])
        case .storeFailed(let reason):
            logger.critical("the store failed; refusing all further work until restarted", metadata: ["error": "\(reason)"])
        case .handedOver(let term, let forShutdown):
            logger.notice(
                forShutdown ? "handed leadership over for shutdown" : "handed leadership over as asked", metadata: ["term": "\(term)"])
        case .handOverEnded(let stillLeader, let term):
            if stillLeader {
                logger.warning("handover failed: no follower caught up in time; still leading", metadata: ["term": "\(term)"])
            } else {
                logger.notice("handover finished; following", metadata: ["term": "\(term)"])
            }
        case .newCluster:
            logger.notice("a new cluster: starting with an empty log")
        case .replacementNode:
            logger.notice("this node's disk is empty but the cluster has history: not voting until caught up")
        }
    }

    private func log(_ attempt: AttemptRecord, of event: QueuedEvent, term: Term, problem: String?) {
        let metadata = { () -> Logger.Metadata in
            [
                "event": "\(event.number)", "key": "\(event.key)", "action": "\(event.action.rawValue)",
                "attempt": "\(event.attempts + 1)", "status": "\(attempt.statusCode.map(String.init) ?? "none")",
                "duration_ms": "\(attempt.durationMilliseconds)", "term": "\(term)", "detail": "\(attempt.detail)",
            ]
        }
        switch attempt.outcome {
        // Every delivery is counted (`pdrelay_upstream_responses_total`, the latency histogram);
        // a line per event is for debugging, not for the hot path.
        case .delivered: logger.debug("delivered", metadata: metadata())
        case .retry:
            logger.warning("delivery failed; will retry: \(Self.problem(attempt, routingKey: event.key.routingKey))", metadata: metadata())
        case .deadLettered: logger.error("dead-lettered: \(Self.problem(attempt, routingKey: event.key.routingKey))", metadata: metadata())
        }
    }

    /// The words the runbook's troubleshooting matrix tells an operator to grep for: "401
    /// Unauthorized" and "403 Forbidden" with the masked routing key, "Connection Timeout",
    /// "429 Too Many Requests".
    static func problem(_ attempt: AttemptRecord, routingKey: String) -> String {
        let key = RoutingKeyMask.mask(routingKey)
        switch attempt.statusCode {
        case 401?: return "error: 401 Unauthorized for routing key \(key): is the integration key right, and its service enabled?"
        case 403?: return "error: 403 Forbidden for routing key \(key): PagerDuty refuses this key or this account's requests"
        case 429?: return "429 Too Many Requests for routing key \(key): backing off"
        case let code?: return "error: HTTP \(code) from the upstream"
        case nil where attempt.detail.hasPrefix(UpstreamClient.timeoutDetailPrefix) || attempt.detail.contains("connectTimeout"):
            return "error: Connection Timeout: \(attempt.detail)"
        case nil: return "error: no answer: \(attempt.detail)"
        }
    }

    // MARK: queries

    var queuedCount: Int { core.raft.machine.queuedCount }
    /// The failover rehearsals kept in the replicated state, oldest first.
    var drills: [DrillRecord] { core.raft.machine.drills }

    func probeStore() async -> String? {
        if let storeFailure = core.storeFailure { return storeFailure }
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
            nodeID: core.raft.id, role: core.raft.role, term: core.raft.term, leaderID: core.raft.leaderID,
            leaseRemainingMilliseconds: core.raft.leaseRemainingMilliseconds(now: now), commitIndex: core.raft.commitIndex,
            appliedIndex: core.raft.lastApplied, lastLogIndex: core.raft.lastLogIndex, snapshotIndex: core.raft.snapshotIndex,
            applyLag: core.raft.applyLag,
            hasQuorumContact: core.raft.hasQuorumContact(now: now), mayVote: core.raft.mayVote,
            awaitingDiskDecision: core.awaitingDiskDecision,
            peers: core.raft.peerProgress, nowMilliseconds: now)
    }

    func status() -> QueueStatus {
        let machine = core.raft.machine
        let now = environment.monotonicMilliseconds()
        var byRoutingKey: [String: QueueStatus.RoutingKeyCounts] = [:]
        for event in machine.events(matching: EventFilter(), limit: .max) {
            let routingKey = event.key.routingKey
            var counts = byRoutingKey[routingKey] ?? .init(routingKey: RoutingKeyMask.mask(routingKey))
            if event.state == .pending { counts.pending += 1 } else { counts.dead += 1 }
            byRoutingKey[routingKey] = counts
        }
        for (routingKey, budget) in byRoutingKey.keys.compactMap({ key in core.deliveryBudget(for: key, now: now).map { (key, $0) } }) {
            byRoutingKey[routingKey]!.waitingForSlot = budget.waitingForSlot
            byRoutingKey[routingKey]!.slotMilliseconds = budget.slotMilliseconds
        }
        return QueueStatus(
            pending: machine.pendingCount, dead: machine.deadCount, inFlight: core.deliveriesInFlight,
            dedupKeys: machine.dedupKeyCount, maxQueuedEvents: configuration.queue.maxQueuedEvents,
            routingKeys: byRoutingKey.values.sorted { $0.routingKey < $1.routingKey })
    }

    func events(matching filter: EventFilter, limit: Int) -> [QueuedEvent] {
        core.raft.machine.events(matching: filter, limit: limit)
    }

    func folders(matching filter: IncidentFilter, before: UInt64, limit: Int) -> [IncidentFolder] {
        core.raft.machine.folders(matching: filter, before: before, limit: limit)
    }

    /// Events window `id` holds now, by this node's copy of the state.
    func holding(inWindow id: UInt64) -> Int { core.raft.machine.maintenance.holding(in: id) }

    func maintenanceWindows(atWallClock now: Int64) -> [MaintenanceWindowView] {
        let maintenance = core.raft.machine.maintenance
        return maintenance.sortedWindows.map { MaintenanceWindowView($0, holding: maintenance.holding(in: $0.id), atMilliseconds: now) }
    }

    /// What this node, if it leads, must release by `now` (`TimedReleaseService`): held events
    /// of maintenance windows that have ended, and digests whose interval has passed.
    func timedWorkDue(atWallClock now: Int64) -> (heldEvents: Bool, digests: Bool) {
        guard core.raft.role == .leader else { return (false, false) }
        let machine = core.raft.machine
        return (machine.maintenance.hasHeldEventsDue(at: now), machine.hasDigestsDue(at: now))
    }

    /// Whether this node leads, and the heartbeats: what `HeartbeatMonitorService` times.
    func heartbeatsToWatch() -> (isLeader: Bool, heartbeats: [Heartbeat]) {
        (core.raft.role == .leader, core.raft.machine.sortedHeartbeats)
    }

    func attempts(of eventNumber: UInt64) async throws -> [AttemptRecord] {
        try await store.attempts(eventNumber: eventNumber)
    }
}
