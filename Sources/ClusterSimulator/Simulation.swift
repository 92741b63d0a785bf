import ClusterCore
import HeapModule
import RelayCore
import RelayReplication
import SeededRandom

/// Runs copies of the pure cluster core against a simulated world: one thread, one seed, one
/// simulated clock from which each node's drifting monotonic clock is derived. After every step
/// it checks the invariants of `design/cluster.md`; the first violation ends the run.
public struct Simulation {
    public typealias Node = RaftNode<RelayStateMachine>

    public struct Options: Sendable {
        public var timing = ClusterTiming()
        public var faults: ProtocolFaults = .none
        public var faultPhaseMilliseconds: Int64 = 6_000
        public var healedPhaseMilliseconds: Int64 = 12_000
        public var tickMilliseconds: Int64 = 10
        /// Ends the run at this simulated time and skips the liveness check: a search for the
        /// seed that catches a deliberate safety bug needs only the safety checks, and most of a
        /// full run's steps are its long healed tail.
        public var safetyOnlyUntilMilliseconds: Int64?
        public var trace = false
        /// Called with each trace line as it happens (the command prints them), so a run that
        /// stops at a failed precondition still shows how it got there.
        public var onTrace: (@Sendable (String) -> Void)?
        public init() {}
    }

    public struct Outcome: Sendable {
        public let seed: UInt64
        public let mix: FaultMix
        public let violation: String?
        public let steps: Int
        public let acknowledged: Int
        public let delivered: Int
        public let leaderChanges: Int
        public let trace: [String]
    }

    // MARK: world state

    struct SimNode {
        var raft: Node?
        var durable: DurableState<RelayStateMachine>?
        var incarnation = 0
        var clockOffset: Int64
        var clockRate: Double
        var pausedUntil: Int64?
        var diskFreeAt: Int64 = 0
        /// When the disk last went from idle to busy.
        var diskBusySince: Int64 = 0
        var scheduler = DeliveryScheduler(maxInFlight: 8)
        var ledTerm: Term?
        var clientTokens: [LogIndex: Int] = [:]
        /// Outcomes proposed but not yet applied: the key is released only once its outcome is.
        var pendingOutcomes: [LogIndex: (key: OrderingKey, retryAt: Int64?)] = [:]
        /// Intents proposed but not yet applied: the event is sent only once its intent is.
        var pendingIntents: [LogIndex: QueuedEvent] = [:]
        /// Lost its disk and has not caught up yet; survives further crashes, as a marker file
        /// in the node's new store would.
        var recovering = false
        /// Shutting down gracefully: starts no deliveries, then hands leadership over.
        var draining = false
        /// Upstream requests of this incarnation not yet answered or timed out.
        var upstreamInFlight = 0
    }

    enum Event {
        case tick(NodeID)
        case message(Message<RelayStateMachine>)
        case diskDone(NodeID, incarnation: Int, ready: Node.Ready)
        /// Node 0 stands for whichever node leads when the event strikes.
        case crash(NodeID)
        case restart(NodeID, lostDisk: Bool)
        case pause(NodeID, milliseconds: Int64)
        /// The end of the pause that was to last until `until`: a node that crashed and was
        /// paused again since must not wake early, ahead of the disk writes deferred to then.
        case resume(NodeID, until: Int64)
        case partition(Int)
        case healPartition(Int)
        /// A graceful shutdown (SIGTERM) of a node, leader or not, restarted soon after.
        case handOver(NodeID)
        case continueHandOver(NodeID, incarnation: Int, deadline: Int64)
        case client(request: Int)
        /// A committed intent's send, a moment after it applied (the engine's task runs then); a
        /// paused node carries it out when it wakes, after checking its lease again.
        case send(NodeID, incarnation: Int, term: Term, QueuedEvent)
        case upstreamArrival(Delivery)
        case deliveryOutcome(Delivery, verdict: UpstreamVerdict)
        case heal
    }

    struct Scheduled: Comparable {
        let time: Int64
        let sequence: Int
        let event: Event
        static func < (lhs: Scheduled, rhs: Scheduled) -> Bool { (lhs.time, lhs.sequence) < (rhs.time, rhs.sequence) }
        static func == (lhs: Scheduled, rhs: Scheduled) -> Bool { (lhs.time, lhs.sequence) == (rhs.time, rhs.sequence) }
    }

    struct Delivery {
        let node: NodeID
        let incarnation: Int
        let term: Term
        let event: QueuedEvent
        let sentAtReal: Int64
        let deadlineReal: Int64
    }

    struct ClientRequest {
        let body: [UInt8]
        var attempts = 0
        var acknowledged = false
    }

    let seed: UInt64
    let options: Options
    public let mix: FaultMix
    /// The options' timing, with this seed's drift bound.
    var timing: ClusterTiming
    var random: SplitMix64
    var now: Int64 = 0
    var sequence = 0
    var queue = Heap<Scheduled>()
    var nodes: [SimNode] = []
    var blocked: Set<[NodeID]> = []
    /// The links each active partition cuts; `blocked` is their union.
    var partitions: [Int: Set<[NodeID]>] = [:]
    /// Which node each partition cuts off (0: whoever leads when it starts), and whether only
    /// its outgoing links fail.
    var partitionPlans: [Int: (isolated: NodeID, oneWay: Bool)] = [:]
    var healed = false
    var upstreamMix: FaultMix.UpstreamMix
    var requests: [ClientRequest] = []
    /// Every client request answered as accepted, with the event number it was given.
    var acknowledgedEvents: Set<UInt64> = []
    var deliveredEvents: [UInt64: Int] = [:]
    var timedOutAttempts: [UInt64: Int] = [:]
    var leaders: [Term: NodeID] = [:]
    var leaderChanges = 0
    /// Every committed entry, with the term of the node that first applied it: at least the
    /// term in which it was committed.
    var committed: [LogIndex: (term: Term, command: RelayCommand?, committedBy: Term)] = [:]
    var maxDeliveredPerKey: [OrderingKey: UInt64] = [:]
    /// The newest term that has started a request for each key: an older term's request must
    /// not land after it (per-key fencing).
    var newestStartedTerm: [OrderingKey: Term] = [:]
    var violation: String?
    var steps = 0
    var trace: [String] = []
    let members: [NodeID]

    public init(seed: UInt64, options: Options = Options()) {
        self.seed = seed
        self.options = options
        var random = SplitMix64(seed: seed)
        mix = FaultMix.forSeed(seed, &random)
        timing = options.timing
        timing.maxClockDrift = mix.clockDrift
        timing.upstreamTimeoutMilliseconds = mix.upstreamTimeoutMilliseconds
        upstreamMix = mix.upstream
        self.random = random
        members = Array(1...mix.nodeCount)
        for id in members {
            let position: Double
            switch (mix.focus, mix.clocksAtTheBound) {
            case (.clocks, _): position = id == 1 ? 0 : 1
            case (_, true): position = Double(self.random.next() % 2)
            case (_, false): position = Double(self.random.next() % 1_001) / 1_000
            }
            let rate = 1 + (position - 0.5) * mix.clockDrift
            nodes.append(SimNode(clockOffset: Int64(self.random.next() % 100_000), clockRate: rate))
            start(id)
            schedule(at: Int64(self.random.next() % UInt64(options.tickMilliseconds)), .tick(id))
        }
        scheduleFaults()
        for request in 0..<Int(options.faultPhaseMilliseconds) * mix.clientRequestsPerSecond / 1_000 {
            requests.append(ClientRequest(body: Self.clientEvent(&self.random)))
            schedule(at: Int64(self.random.next() % UInt64(options.faultPhaseMilliseconds)), .client(request: request))
        }
        schedule(at: options.faultPhaseMilliseconds, .heal)
    }

    /// Runs the seed to the end, or to the first violation.
    public mutating func run() -> Outcome {
        // After healing, a last leader change may hold keys for an older term's requests
        // (`intentHoldMilliseconds`) before their events can go: give liveness room for that.
        let fullRun = options.faultPhaseMilliseconds + options.healedPhaseMilliseconds + 2 * timing.intentHoldMilliseconds
        let end = options.safetyOnlyUntilMilliseconds ?? fullRun
        while violation == nil, let next = queue.popMin(), next.time <= end {
            now = next.time
            steps += 1
            handle(next.event)
            checkInvariants()
        }
        if violation == nil && options.safetyOnlyUntilMilliseconds == nil { checkLiveness() }
        return Outcome(
            seed: seed, mix: mix, violation: violation, steps: steps, acknowledged: acknowledgedEvents.count,
            delivered: deliveredEvents.count, leaderChanges: leaderChanges, trace: trace)
    }

    // MARK: scheduling

    mutating func schedule(at time: Int64, _ event: Event) {
        sequence += 1
        queue.insert(Scheduled(time: max(time, now), sequence: sequence, event: event))
    }

    func localTime(_ id: NodeID) -> Int64 {
        let node = nodes[id - 1]
        return node.clockOffset + Int64(Double(now) * node.clockRate)
    }

    mutating func note(_ text: @autoclosure () -> String) {
        guard options.trace else { return }
        let line = "\(now)ms \(text())"
        trace.append(line)
        options.onTrace?(line)
    }

    mutating func scheduleFaults() {
        let seconds = Double(options.faultPhaseMilliseconds) / 1_000
        func count(_ rate: Double) -> Int { Int((rate * seconds).rounded(.down)) + (random.next() % 1_000 < UInt64(rate * 1_000) ? 1 : 0) }
        for _ in 0..<count(mix.crashesPerSecond) {
            let node = pickTarget()
            let at = Int64(random.next() % UInt64(options.faultPhaseMilliseconds))
            schedule(at: at, .crash(node))
            let lostDisk = Double(random.next() % 1_000) / 1_000 < mix.diskLossShare
            schedule(at: at + 200 + Int64(random.next() % 2_000), .restart(node, lostDisk: lostDisk))
        }
        for _ in 0..<count(mix.pausesPerSecond) {
            let node = pickTarget()
            let at = Int64(random.next() % UInt64(options.faultPhaseMilliseconds))
            // Longer than the lease: the node's belief must expire by its own clock.
            schedule(at: at, .pause(node, milliseconds: timing.minimumElectionTimeoutMilliseconds * 2 + Int64(random.next() % 1_000)))
        }
        for _ in 0..<count(mix.handOversPerSecond) {
            schedule(at: Int64(random.next() % UInt64(options.faultPhaseMilliseconds)), .handOver(pickTarget()))
        }
        for index in 0..<count(mix.partitionsPerSecond) {
            let at = Int64(random.next() % UInt64(options.faultPhaseMilliseconds))
            partitionPlans[index] = (isolated: pickTarget(), oneWay: random.next() % 3 == 0)
            schedule(at: at, .partition(index))
            schedule(at: at + 300 + Int64(random.next() % 3_000), .healPartition(index))
        }
    }

    /// Half the faults hit whichever node leads when they strike (0 stands for it).
    mutating func pickTarget() -> NodeID {
        mix.focus != .everything || random.next() % 2 == 0 ? 0 : members[Int(random.next() % UInt64(members.count))]
    }

    func currentLeader() -> NodeID? {
        members.filter { nodes[$0 - 1].raft?.role == .leader }.max { nodes[$0 - 1].raft!.term < nodes[$1 - 1].raft!.term }
    }

    // MARK: events

    mutating func handle(_ event: Event) {
        switch event {
        case .tick(let id):
            schedule(at: now + options.tickMilliseconds, .tick(id))
            guard isRunning(id) else { return }
            let ready = nodes[id - 1].raft!.tick(now: localTime(id))
            process(id, ready)
            startDeliveries(id)
        case .message(let message):
            let id = message.to
            if let until = nodes[id - 1].pausedUntil {
                schedule(at: until, .message(message))
                return
            }
            guard nodes[id - 1].raft != nil else { return }
            let ready = nodes[id - 1].raft!.receive(message, now: localTime(id))
            process(id, ready)
            startDeliveries(id)
        case .diskDone(let id, let incarnation, let ready):
            guard nodes[id - 1].incarnation == incarnation, nodes[id - 1].raft != nil else { return }
            if let until = nodes[id - 1].pausedUntil {
                schedule(at: until, .diskDone(id, incarnation: incarnation, ready: ready))
                return
            }
            persist(id, ready)
            afterPersist(id, ready)
            if let vote = ready.hardState?.votedFor, vote != id, !healed, Double(random.next() % 1_000) / 1_000 < mix.crashAfterVoteShare {
                // The vote is on disk and on its way: crash and come straight back, before the
                // election is over.
                schedule(at: now, .crash(id))
                schedule(at: now + 1 + Int64(random.next() % 5), .restart(id, lostDisk: false))
            }
        case .crash(let target):
            guard let id = target == 0 ? currentLeader() : target, nodes[id - 1].raft != nil else { return }
            note("node \(id) crashes")
            nodes[id - 1].raft = nil
            nodes[id - 1].pausedUntil = nil
            nodes[id - 1].incarnation += 1
            resetLeaderState(id)
        case .restart(let target, let lostDisk):
            guard let id = target == 0 ? members.first(where: { nodes[$0 - 1].raft == nil }) : target, nodes[id - 1].raft == nil
            else { return }
            // The fault model keeps a majority's disks: a disk is lost only if every other node
            // that lost one has caught up since.
            let recovering = members.filter { $0 != id && nodes[$0 - 1].recovering }.count
            let losesDisk = lostDisk && recovering + 1 <= members.count - (members.count / 2 + 1)
            note("node \(id) restarts\(losesDisk ? " on an empty disk" : "")")
            if losesDisk {
                nodes[id - 1].durable = nil
                nodes[id - 1].recovering = true
            }
            start(id)
        case .pause(let target, let duration):
            guard !healed, let id = target == 0 ? currentLeader() : target, nodes[id - 1].raft != nil, nodes[id - 1].pausedUntil == nil
            else { return }
            nodes[id - 1].pausedUntil = now + duration
            note("node \(id) paused for \(duration)ms")
            schedule(at: now + duration, .resume(id, until: now + duration))
        case .resume(let id, let until):
            guard nodes[id - 1].pausedUntil == until else { return }
            nodes[id - 1].pausedUntil = nil
            note("node \(id) resumes")
        case .partition(let index):
            guard !healed, let plan = partitionPlans[index], let isolated = plan.isolated == 0 ? currentLeader() : plan.isolated else {
                return
            }
            var links: Set<[NodeID]> = []
            for other in members where other != isolated {
                links.insert([isolated, other])
                if !plan.oneWay { links.insert([other, isolated]) }
            }
            partitions[index] = links
            blocked = partitions.values.reduce(into: []) { $0.formUnion($1) }
            note("partition \(links.sorted { $0.lexicographicallyPrecedes($1) })")
        case .healPartition(let index):
            partitions[index] = nil
            blocked = partitions.values.reduce(into: []) { $0.formUnion($1) }
        case .handOver(let target):
            guard !healed, let id = target == 0 ? currentLeader() : target, isRunning(id), !nodes[id - 1].draining else { return }
            note("node \(id) shuts down gracefully")
            nodes[id - 1].draining = true
            // As the engine's drain: wait out the requests in flight (each ends by the upstream
            // timeout, on the node's clock), then hand over.
            let deadline = now + timing.upstreamTimeoutMilliseconds * 2 + 2 * timing.minimumElectionTimeoutMilliseconds
            schedule(at: now + 1, .continueHandOver(id, incarnation: nodes[id - 1].incarnation, deadline: deadline))
        case .continueHandOver(let id, let incarnation, let deadline):
            guard nodes[id - 1].incarnation == incarnation, nodes[id - 1].raft != nil else { return }
            if let until = nodes[id - 1].pausedUntil {
                schedule(at: until, .continueHandOver(id, incarnation: incarnation, deadline: deadline))
                return
            }
            if nodes[id - 1].upstreamInFlight > 0 {
                precondition(now < deadline, "node \(id) still has upstream requests after their timeout")
                schedule(at: now + 5, .continueHandOver(id, incarnation: incarnation, deadline: deadline))
                return
            }
            if nodes[id - 1].raft!.role == .leader && now < deadline {
                let (handedOver, ready) = nodes[id - 1].raft!.transferLeadership(now: localTime(id))
                process(id, ready)
                if !handedOver {
                    schedule(at: now + 5, .continueHandOver(id, incarnation: incarnation, deadline: deadline))
                    return
                }
                note("node \(id) handed leadership over")
            }
            // The process exits and is started again, from its disk.
            schedule(at: now + 1, .crash(id))
            schedule(at: now + 100 + Int64(random.next() % 1_000), .restart(id, lostDisk: false))
        case .client(let index):
            sendClientRequest(index)
        case .send(let id, let incarnation, let term, let event):
            send(event, from: id, incarnation: incarnation, term: term)
        case .upstreamArrival(let delivery):
            upstreamReceives(delivery)
        case .deliveryOutcome(let delivery, let verdict):
            if nodes[delivery.node - 1].incarnation == delivery.incarnation { nodes[delivery.node - 1].upstreamInFlight -= 1 }
            deliveryFinished(delivery, verdict: verdict)
        case .heal:
            heal()
        }
    }

    func isRunning(_ id: NodeID) -> Bool { nodes[id - 1].raft != nil && nodes[id - 1].pausedUntil == nil }

    /// Starts a node from its disk. A node that lost its disk and has not caught up yet starts
    /// in the no-vote state every time, as its store's "recovering" marker would make it.
    mutating func start(_ id: NodeID) {
        nodes[id - 1].incarnation += 1
        nodes[id - 1].raft = Node(
            id: id, members: members, timing: timing, initialMachine: RelayStateMachine(limits: Self.limits),
            durable: nodes[id - 1].durable, lostDisk: nodes[id - 1].recovering, seed: random.next(), now: localTime(id),
            snapshotThresholdEntries: 200,
            faults: options.faults)
        resetLeaderState(id)
    }

    mutating func resetLeaderState(_ id: NodeID) {
        nodes[id - 1].draining = false
        nodes[id - 1].upstreamInFlight = 0
        nodes[id - 1].ledTerm = nil
        nodes[id - 1].clientTokens = [:]
        nodes[id - 1].pendingOutcomes = [:]
        nodes[id - 1].pendingIntents = [:]
        nodes[id - 1].scheduler = DeliveryScheduler(maxInFlight: 8)
    }

    static let limits = RelayStateMachine.Limits(maxQueuedEvents: 10_000, maxDedupKeys: 20_000, duplicateWindowMilliseconds: 1_000)
    static let retryPolicy = RetryPolicy(initialBackoffMilliseconds: 20, maxBackoffMilliseconds: 500, maxAttempts: 30)

    // MARK: the shell, as the real node will run it

    /// Carries out a Ready: durable writes first (a crash before they finish loses them), then
    /// messages, then client answers.
    mutating func process(_ id: NodeID, _ ready: Node.Ready) {
        var ready = ready
        let writeRunning = nodes[id - 1].diskFreeAt > now ? now - nodes[id - 1].diskBusySince : 0
        for heartbeat in ready.takeHeartbeats(writeRunningForMilliseconds: writeRunning, timing: timing) { send(heartbeat) }
        noteLeadership(id)
        if nodes[id - 1].recovering, nodes[id - 1].raft?.mayVote == true { nodes[id - 1].recovering = false }
        if ready.needsPersistence {
            if nodes[id - 1].diskFreeAt <= now { nodes[id - 1].diskBusySince = now }
            let done = max(now, nodes[id - 1].diskFreeAt) + Int64(random.next() % 3)
            nodes[id - 1].diskFreeAt = done
            schedule(at: done, .diskDone(id, incarnation: nodes[id - 1].incarnation, ready: ready))
        } else if nodes[id - 1].diskFreeAt >= now {
            // Readys are carried out in order: this one's messages may speak for entries an
            // earlier Ready is still writing (a duplicate append's acknowledgement does), so they
            // wait for that write, as the engine's writer loop makes them. A write that ends at
            // this very millisecond may not have been carried out yet either (seed 4666 acked
            // entries whose write a crash in the same millisecond then lost): this Ready goes
            // after it.
            schedule(at: nodes[id - 1].diskFreeAt, .diskDone(id, incarnation: nodes[id - 1].incarnation, ready: ready))
        } else {
            afterPersist(id, ready)
        }
    }

    mutating func persist(_ id: NodeID, _ ready: Node.Ready) {
        var durable = nodes[id - 1].durable ?? DurableState(hardState: HardState(term: 0, votedFor: nil), snapshot: nil, entries: [])
        durable.write(ready)
        nodes[id - 1].durable = durable
    }

    mutating func afterPersist(_ id: NodeID, _ ready: Node.Ready) {
        for message in ready.messages {
            if case .voteResponse(granted: true) = message.body {
                let raft = nodes[id - 1].raft
                note(
                    "node \(id) votes for \(message.to) in term \(message.term) (its log ends at \(raft?.lastLogIndex ?? 0) in term \(raft?.lastLogTerm ?? 0), commit \(raft?.commitIndex ?? 0), mayVote \(raft?.mayVote ?? false))"
                )
            }
            send(message)
        }
        for applied in ready.applied { record(applied, on: id) }
        guard nodes[id - 1].raft != nil else { return }
        let durableLast = nodes[id - 1].durable?.lastIndex ?? 0
        if !ready.entries.isEmpty || ready.snapshot != nil {
            let next = nodes[id - 1].raft!.persisted(through: durableLast, now: localTime(id))
            if next.needsPersistence || !next.messages.isEmpty || !next.applied.isEmpty { process(id, next) }
        }
    }

    mutating func send(_ message: Message<RelayStateMachine>) {
        guard !blocked.contains([message.from, message.to]) else { return }
        if Double(random.next() % 1_000) / 1_000 < mix.dropProbability, !healed { return }
        let copies = !healed && Double(random.next() % 1_000) / 1_000 < mix.duplicateProbability ? 2 : 1
        for _ in 0..<copies {
            schedule(at: now + 1 + Int64(random.next() % UInt64(mix.maxNetworkDelayMilliseconds)), .message(message))
        }
    }

    mutating func noteLeadership(_ id: NodeID) {
        guard let raft = nodes[id - 1].raft else { return }
        if raft.role == .leader, nodes[id - 1].ledTerm != raft.term {
            if let other = leaders[raft.term], other != id {
                violation = "election safety: nodes \(other) and \(id) both lead term \(raft.term)"
                return
            }
            leaders[raft.term] = id
            leaderChanges += 1
            note("node \(id) leads term \(raft.term)")
            resetLeaderState(id)
            nodes[id - 1].ledTerm = raft.term
            // Raft's leader completeness: entries committed in earlier terms are in the log.
            // Sorted, so the same seed reports the same entry in every process (dictionary order
            // is seeded per process).
            for index in committed.keys.sorted() where index > raft.snapshotIndex && committed[index]!.committedBy < raft.term {
                guard raft.term(at: index) == committed[index]!.term else {
                    violation = "leader completeness: node \(id), leader of term \(raft.term), lacks committed entry \(index)"
                    return
                }
            }
            for key in raft.machine.keysWithPendingEvents { nodes[id - 1].scheduler.keyChanged(key) }
        } else if raft.role != .leader, nodes[id - 1].ledTerm != nil {
            resetLeaderState(id)
        }
    }

    /// A node applied a committed entry: check state machine safety, answer its client, and on
    /// the leader let the scheduler see keys whose first event changed.
    mutating func record(_ applied: Node.Applied, on id: NodeID) {
        if let known = committed[applied.index] {
            guard known.term == applied.term, known.command == applied.command else {
                violation = "state machine safety: node \(id) applied a different entry at index \(applied.index)"
                return
            }
        } else {
            committed[applied.index] = (applied.term, applied.command, nodes[id - 1].raft?.term ?? applied.term)
        }
        guard let raft = nodes[id - 1].raft, raft.role == .leader, nodes[id - 1].ledTerm == raft.term else { return }
        if let request = nodes[id - 1].clientTokens.removeValue(forKey: applied.index), let result = applied.result?.result {
            switch result {
            case .accepted(_, let number), .duplicate(_, let number), .coalesced(_, let number):
                requests[request].acknowledged = true
                acknowledgedEvents.insert(number)
            default: break
            }
        }
        for key in applied.result?.effects.changedKeys ?? [] { nodes[id - 1].scheduler.keyChanged(key) }
        if let pending = nodes[id - 1].pendingOutcomes.removeValue(forKey: applied.index) {
            nodes[id - 1].scheduler.finished(pending.key, retryAtMilliseconds: pending.retryAt)
        }
        if let event = nodes[id - 1].pendingIntents.removeValue(forKey: applied.index) {
            if case .intentOpened = applied.result?.result, applied.term == raft.term {
                schedule(at: now + Int64(random.next() % 3), .send(id, incarnation: nodes[id - 1].incarnation, term: raft.term, event))
                if !healed, nodes[id - 1].pausedUntil == nil, Double(random.next() % 1_000) / 1_000 < mix.pauseAfterIntentShare {
                    schedule(
                        at: now, .pause(id, milliseconds: timing.minimumElectionTimeoutMilliseconds * 2 + Int64(random.next() % 1_000)))
                }
            } else {
                nodes[id - 1].scheduler.finished(event.key, retryAtMilliseconds: nil)
            }
        }
    }

    // MARK: clients

    static func clientEvent(_ random: inout SplitMix64) -> [UInt8] {
        let key = "host-\(random.next() % 6)"
        let action = ["trigger", "trigger", "acknowledge", "resolve", "resolve"][Int(random.next() % 5)]
        let routingKey = "simroutingkey" + String(repeating: "0", count: 18) + "\(random.next() % 2)"
        let payload = action == "trigger" ? #","payload":{"summary":"down \#(random.next() % 3)","source":"sim","severity":"error"}"# : ""
        return Array(#"{"routing_key":"\#(routingKey)","event_action":"\#(action)","dedup_key":"\#(key)"\#(payload)}"#.utf8)
    }

    mutating func sendClientRequest(_ index: Int) {
        guard !requests[index].acknowledged, requests[index].attempts < 40 else { return }
        requests[index].attempts += 1
        let id = members[Int(random.next() % UInt64(members.count))]
        if isRunning(id), nodes[id - 1].raft!.role == .leader {
            let event = try! EventValidator.validate(body: requests[index].body, api: .v2Alert).get()
            let acceptance = Acceptance(event, assignedKey: "k\(random.next())", receivedAtMilliseconds: now)
            if let (indexes, ready) = nodes[id - 1].raft!.propose([.accept(acceptance)], now: localTime(id)) {
                nodes[id - 1].clientTokens[indexes[0]] = index
                process(id, ready)
            }
        }
        // Not a leader, or no answer yet: the client tries again, with the same bytes.
        schedule(at: now + 300, .client(request: index))
    }

    // MARK: deliveries and the upstream

    /// As the engine: the scheduler picks keys (holding those an older term may still be sending),
    /// each send first commits an intent, and goes out only once that intent has applied.
    mutating func startDeliveries(_ id: NodeID) {
        guard isRunning(id), !nodes[id - 1].draining, let raft = nodes[id - 1].raft, nodes[id - 1].ledTerm == raft.term,
            raft.mayStartDelivery(now: localTime(id)), let fence = raft.deliveryFence
        else { return }
        let started = nodes[id - 1].scheduler.start(
            nowMilliseconds: localTime(id), head: { raft.machine.head(of: $0) },
            notBefore: { fence.earliestStartMilliseconds(openIntent: raft.machine.openIntent(for: $0)) })
        let intents = started.compactMap { fence.intent(for: $0) }
        guard !intents.isEmpty else {
            for event in started { send(event, from: id, incarnation: nodes[id - 1].incarnation, term: raft.term) }
            return
        }
        guard let (indexes, ready) = nodes[id - 1].raft!.propose(intents.map(RelayCommand.openIntent), now: localTime(id)) else { return }
        for (index, event) in zip(indexes, started) { nodes[id - 1].pendingIntents[index] = event }
        process(id, ready)
    }

    /// Sends one event whose intent is committed, if the lease still allows it now.
    mutating func send(_ event: QueuedEvent, from id: NodeID, incarnation: Int, term: Term) {
        guard nodes[id - 1].incarnation == incarnation, nodes[id - 1].raft != nil else { return }
        if let until = nodes[id - 1].pausedUntil {
            schedule(at: until, .send(id, incarnation: incarnation, term: term, event))
            return
        }
        guard let raft = nodes[id - 1].raft, raft.role == .leader, raft.term == term, nodes[id - 1].ledTerm == term else { return }
        guard raft.mayStartDelivery(now: localTime(id)) else {
            // The lease ran short: the key tries again next heartbeat, with a new intent.
            nodes[id - 1].scheduler.finished(event.key, retryAtMilliseconds: localTime(id) + timing.heartbeatIntervalMilliseconds)
            return
        }
        // No byte leaves after the upstream timeout, measured on the node's clock.
        let timeoutReal = Int64(Double(timing.upstreamTimeoutMilliseconds) / nodes[id - 1].clockRate)
        let delivery = Delivery(
            node: id, incarnation: incarnation, term: term, event: event, sentAtReal: now, deadlineReal: now + timeoutReal)
        nodes[id - 1].upstreamInFlight += 1
        newestStartedTerm[event.key] = max(newestStartedTerm[event.key] ?? 0, term)
        // A slow proxy or link takes long to pass the request on; past the deadline the send
        // guard has stopped it, and the upstream never sees it.
        let transit = slowDelay() ?? 1 + Int64(random.next() % 5)
        if transit > timeoutReal {
            schedule(at: delivery.deadlineReal, .deliveryOutcome(delivery, verdict: .retry(retryAfterMilliseconds: nil)))
        } else {
            schedule(at: now + transit, .upstreamArrival(delivery))
        }
    }

    /// A delay of up to ten leases, for the share of requests the upstream mix makes slow.
    mutating func slowDelay() -> Int64? {
        guard Double(random.next() % 10_000) / 10_000 < upstreamMix.slowShare else { return nil }
        return Int64(random.next() % UInt64(10 * timing.leaseDurationMilliseconds))
    }

    mutating func upstreamReceives(_ delivery: Delivery) {
        let roll = Double(random.next() % 10_000) / 10_000
        let mix = upstreamMix
        var threshold = mix.hangShare
        if roll < threshold {
            schedule(at: delivery.deadlineReal, .deliveryOutcome(delivery, verdict: .retry(retryAfterMilliseconds: nil)))
            return
        }
        threshold += mix.rejectShare
        if roll < threshold { return reply(delivery, .rejected) }
        threshold += mix.throttleShare
        if roll < threshold { return reply(delivery, .retry(retryAfterMilliseconds: 100)) }
        threshold += mix.serverErrorShare
        if roll < threshold { return reply(delivery, .retry(retryAfterMilliseconds: nil)) }
        // Ingested: check order and fencing at the moment it lands.
        land(delivery)
        let answerAt = now + (slowDelay() ?? 1 + Int64(random.next() % 5))
        if answerAt >= delivery.deadlineReal {
            timedOutAttempts[delivery.event.number, default: 0] += 1
            schedule(at: delivery.deadlineReal, .deliveryOutcome(delivery, verdict: .retry(retryAfterMilliseconds: nil)))
        } else {
            schedule(at: answerAt, .deliveryOutcome(delivery, verdict: .delivered))
        }
    }

    mutating func reply(_ delivery: Delivery, _ verdict: UpstreamVerdict) {
        schedule(at: min(now + 1 + Int64(random.next() % 5), delivery.deadlineReal), .deliveryOutcome(delivery, verdict: verdict))
    }

    mutating func land(_ delivery: Delivery) {
        let event = delivery.event
        if let newer = newestStartedTerm[event.key], delivery.term < newer {
            violation =
                "fencing: event \(event.number) of \(event.key.dedupKey) from term \(delivery.term) landed after term \(newer) had started a request for the key"
            return
        }
        if let newest = maxDeliveredPerKey[event.key], newest > event.number {
            violation = "order: event \(event.number) of \(event.key.dedupKey) delivered after event \(newest) of the same key"
            return
        }
        maxDeliveredPerKey[event.key] = event.number
        deliveredEvents[event.number, default: 0] += 1
        note(
            "upstream takes event \(event.number) (\(event.action.rawValue) \(event.key.dedupKey)) from node \(delivery.node) term \(delivery.term)"
        )
    }

    mutating func deliveryFinished(_ delivery: Delivery, verdict: UpstreamVerdict) {
        let id = delivery.node
        guard nodes[id - 1].incarnation == delivery.incarnation, isRunning(id), let raft = nodes[id - 1].raft,
            raft.role == .leader, raft.term == delivery.term, nodes[id - 1].ledTerm == raft.term
        else { return }
        let event = delivery.event
        let outcome = verdict.outcome(attemptsBefore: event.attempts, policy: Self.retryPolicy)
        let attempt = AttemptRecord(
            outcome: outcome, atMilliseconds: now, durationMilliseconds: now - delivery.sentAtReal, statusCode: nil, detail: "")
        var retryAt: Int64?
        if outcome == .retry, case .retry(let retryAfter) = verdict {
            retryAt =
                localTime(id)
                + Self.retryPolicy.backoffMilliseconds(
                    afterAttempts: event.attempts + 1, jitter: Double(random.next() % 1_000) / 1_000, retryAfterMilliseconds: retryAfter)
        }
        guard let (indexes, ready) = nodes[id - 1].raft!.propose([.recordAttempt(eventNumber: event.number, attempt)], now: localTime(id))
        else { return }
        nodes[id - 1].pendingOutcomes[indexes[0]] = (event.key, retryAt)
        process(id, ready)
    }

    // MARK: healing and checks

    mutating func heal() {
        healed = true
        partitions = [:]
        blocked = []
        upstreamMix = .healthy
        note("healing: partitions end, crashed nodes restart, the upstream recovers")
        // A pause in progress runs to its end: the node's deferred disk writes and messages are
        // due then, in order.
        for id in members where nodes[id - 1].raft == nil { start(id) }
    }

    mutating func checkInvariants() {
        guard violation == nil else { return }
        var leaseHolders: [NodeID] = []
        for id in members where nodes[id - 1].raft?.leaseRemainingMilliseconds(now: localTime(id)) ?? 0 > 0 {
            leaseHolders.append(id)
        }
        if leaseHolders.count > 1 {
            violation = "lease safety: nodes \(leaseHolders) all hold a valid lease"
        }
        if steps % 64 == 0 { checkLogMatching() }
    }

    mutating func checkLogMatching() {
        let logs = members.compactMap { id in nodes[id - 1].raft.map { (id, $0) } }
        for (offset, (a, left)) in logs.enumerated() {
            for (b, right) in logs[(offset + 1)...] {
                let top = min(left.lastLogIndex, right.lastLogIndex)
                let bottom = max(left.snapshotIndex, right.snapshotIndex)
                guard top > bottom else { continue }
                var matched = false
                for index in stride(from: top, to: bottom, by: -1) {
                    let same = left.term(at: index) == right.term(at: index)
                    if matched && !same {
                        violation = "log matching: nodes \(a) and \(b) agree after index \(index) but differ at it"
                        return
                    }
                    matched = matched || same
                }
            }
        }
    }

    /// After the healed phase: a leader, every acknowledged event delivered or dead-lettered, the
    /// same state on every node, and duplicates within bound.
    mutating func checkLiveness() {
        guard let leaderID = members.first(where: { nodes[$0 - 1].raft?.role == .leader }), let leader = nodes[leaderID - 1].raft else {
            violation = "liveness: no leader \(options.healedPhaseMilliseconds)ms after the faults healed"
            return
        }
        let dead = Set(leader.machine.events(matching: EventFilter(states: [.dead]), limit: .max).map(\.number))
        let pending = leader.machine.events(matching: EventFilter(states: [.pending]), limit: .max)
        for number in acknowledgedEvents.sorted() where deliveredEvents[number] == nil && !dead.contains(number) {
            let stillPending = pending.contains { $0.number == number }
            violation =
                "no acknowledged event lost: event \(number) was acknowledged but never delivered\(stillPending ? " (still pending)" : "")"
            return
        }
        for id in members {
            guard let node = nodes[id - 1].raft else { continue }
            if node.lastApplied != leader.commitIndex {
                violation = "convergence: node \(id) applied \(node.lastApplied), the leader committed \(leader.commitIndex)"
                return
            }
            if node.machine.events(matching: EventFilter(), limit: .max) != leader.machine.events(matching: EventFilter(), limit: .max) {
                violation = "convergence: node \(id)'s queue differs from the leader's"
                return
            }
        }
        for (number, count) in deliveredEvents.sorted(by: { $0.key < $1.key }) where count > 1 {
            let bound = 1 + leaderChanges + (timedOutAttempts[number] ?? 0)
            if count > bound {
                violation = "bounded duplicates: event \(number) reached the upstream \(count) times (bound \(bound))"
                return
            }
        }
    }
}
