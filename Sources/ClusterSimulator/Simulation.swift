import ClusterCore
import EngineCore
import HeapModule
import RelayCore
import RelayReplication
import SeededRandom

/// Runs the node's own engine (`EngineStateMachine`, the core `RelayEngine` ships with) on
/// every node of a simulated cluster: one thread, one seed, one simulated clock from which each
/// node's drifting monotonic clock is derived, a simulated disk per node, a lossy network and a
/// flaky upstream. The simulator decides nothing for a node: it carries out the engine's actions
/// (`Simulation+Executor.swift`) and injects faults. After every step it checks the invariants
/// of `design/cluster.md` (`Simulation+Invariants.swift`); the first violation ends the run.
public struct Simulation {
    public typealias Node = RaftNode<RelayStateMachine>

    public struct Options: Sendable {
        public var timing = ClusterTiming()
        public var faults: ProtocolFaults = .none
        public var engineFaults: EngineFaults = .none
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
        var engine: EngineStateMachine?
        /// What the node's disk holds: its hard state, log and snapshot.
        var disk: DurableState<RelayStateMachine>?
        /// The store's "recovering" marker: set when the disk was lost, cleared by the engine's
        /// write once the node may vote again; it survives crashes, as the store's would.
        var recoveringMarker = false
        var incarnation = 0
        var clockOffset: Int64
        var clockRate: Double
        var pausedUntil: Int64?
        var diskFreeAt: Int64 = 0
        var ledTerm: Term?
        /// Client commands this incarnation was given and has not answered, by request id.
        var requests: [RequestID: (request: Int, acceptance: AcceptanceID)] = [:]
        /// Upstream answers this node was given in a term whose outcome it has not applied yet,
        /// by key: the key's next request of that term must wait for it. `logged` once the
        /// outcome's entry is in this node's log (then an intent may follow it there).
        var awaitingOutcome: [OrderingKey: (eventNumber: UInt64, term: Term, sinceLocal: Int64, logged: Bool)] = [:]
    }

    enum Event {
        case tick(NodeID)
        case message(Message<RelayStateMachine>)
        case diskDone(NodeID, incarnation: Int, steps: [StoreStep])
        case flush(NodeID, incarnation: Int)
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
        case client(request: Int)
        /// The executor carries out a `startDelivery`: a paused node does when it wakes.
        case send(NodeID, incarnation: Int, DeliveryOrder)
        case upstreamArrival(Delivery)
        case deliveryOutcome(Delivery, response: UpstreamResponse)
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
        let deadlineReal: Int64
    }

    /// Tells one client attempt's `accept` command from another's.
    struct AcceptanceID: Hashable {
        let receivedAtMilliseconds: Int64
        let body: [UInt8]
        init(_ acceptance: Acceptance) {
            receivedAtMilliseconds = acceptance.receivedAtMilliseconds
            body = acceptance.body
        }
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
    var settings: EngineSettings
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
    var nextRequestID: RequestID = 1
    /// Every client request answered as accepted, with the event number it was given.
    var acknowledgedEvents: Set<UInt64> = []
    /// Every `accept` command some node has applied.
    var appliedAcceptances: Set<AcceptanceID> = []
    var deliveredEvents: [UInt64: Int] = [:]
    var timedOutAttempts: [UInt64: Int] = [:]
    var leaders: [Term: NodeID] = [:]
    var leaderChanges = 0
    /// Every committed entry, with the term of the node that first applied it: at least the
    /// term in which it was committed.
    var committed: [LogIndex: (term: Term, command: RelayCommand?, committedBy: Term)] = [:]
    /// The highest commit index any node has reached, and whose entries were checked to be on a
    /// majority of disks when it was reached.
    var highestCommit: LogIndex = 0
    var maxDeliveredPerKey: [OrderingKey: UInt64] = [:]
    /// The newest term that has started a request for each key: an older term's request must
    /// not land after it (per-key fencing).
    var newestStartedTerm: [OrderingKey: Term] = [:]
    var violation: String?
    var steps = 0
    var trace: [String] = []
    let members: [NodeID]

    static let limits = RelayStateMachine.Limits(maxQueuedEvents: 10_000, maxDedupKeys: 20_000, duplicateWindowMilliseconds: 1_000)
    static let retryPolicy = RetryPolicy(initialBackoffMilliseconds: 20, maxBackoffMilliseconds: 500, maxAttempts: 30)
    /// Shorter than most pauses and partitions, so that commit timeouts happen.
    static let commitTimeoutMilliseconds: Int64 = 2_000

    public init(seed: UInt64, options: Options = Options()) {
        self.seed = seed
        self.options = options
        var random = SplitMix64(seed: seed)
        mix = FaultMix.forSeed(seed, &random)
        timing = options.timing
        timing.maxClockDrift = mix.clockDrift
        timing.upstreamTimeoutMilliseconds = mix.upstreamTimeoutMilliseconds
        settings = EngineSettings(
            timing: timing, commitTimeoutMilliseconds: Self.commitTimeoutMilliseconds, maxCommitBatchEvents: 64, deliveryConcurrency: 8,
            retry: Self.retryPolicy, deliveryBudget: .unlimited, readinessMaxLagEntries: 1_000, freezeThresholdMilliseconds: 1_000,
            afterFreezeGraceMilliseconds: 200,
            snapshotThresholdEntries: 200)
        settings.faults = options.engineFaults
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

    /// The simulated time at which `id`'s clock will have advanced `milliseconds` from now.
    func realTime(_ id: NodeID, afterLocal milliseconds: Int64) -> Int64 {
        now + Int64((Double(max(milliseconds, 0)) / nodes[id - 1].clockRate).rounded(.up))
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
        members.filter { nodes[$0 - 1].engine?.raft.role == .leader }.max {
            nodes[$0 - 1].engine!.raft.term < nodes[$1 - 1].engine!.raft.term
        }
    }

    func isRunning(_ id: NodeID) -> Bool { nodes[id - 1].engine != nil && nodes[id - 1].pausedUntil == nil }

    // MARK: events

    mutating func handle(_ event: Event) {
        switch event {
        case .tick(let id):
            schedule(at: now + options.tickMilliseconds, .tick(id))
            guard isRunning(id) else { return }
            let local = localTime(id)
            drive(id) { $0.tick(now: local) }
        case .message(let message):
            let id = message.to
            if let until = nodes[id - 1].pausedUntil {
                schedule(at: until, .message(message))
                return
            }
            let local = localTime(id)
            drive(id) { $0.receive([message], now: local) }
        case .diskDone(let id, let incarnation, let steps):
            guard nodes[id - 1].incarnation == incarnation, nodes[id - 1].engine != nil else { return }
            if let until = nodes[id - 1].pausedUntil {
                schedule(at: until, .diskDone(id, incarnation: incarnation, steps: steps))
                return
            }
            writeToDisk(id, steps)
            let local = localTime(id)
            drive(id) { $0.writeCompleted(now: local) }
            crashAfterVote(id, steps)
        case .flush(let id, let incarnation):
            guard nodes[id - 1].incarnation == incarnation, nodes[id - 1].engine != nil else { return }
            if let until = nodes[id - 1].pausedUntil {
                schedule(at: until, .flush(id, incarnation: incarnation))
                return
            }
            let local = localTime(id)
            drive(id) { $0.flush(now: local) }
        case .crash(let target):
            guard let id = target == 0 ? currentLeader() : target, nodes[id - 1].engine != nil else { return }
            note("node \(id) crashes")
            crash(id)
        case .restart(let target, let lostDisk):
            guard let id = target == 0 ? members.first(where: { nodes[$0 - 1].engine == nil }) : target, nodes[id - 1].engine == nil
            else { return }
            // The fault model keeps a majority's disks: a disk is lost only if every other node
            // that lost one has caught up since.
            let recovering = members.filter { $0 != id && nodes[$0 - 1].recoveringMarker }.count
            let losesDisk = lostDisk && recovering + 1 <= members.count - (members.count / 2 + 1)
            note("node \(id) restarts\(losesDisk ? " on an empty disk" : "")")
            if losesDisk {
                nodes[id - 1].disk = nil
                nodes[id - 1].recoveringMarker = true
            }
            start(id)
        case .pause(let target, let duration):
            guard !healed, let id = target == 0 ? currentLeader() : target, nodes[id - 1].engine != nil, nodes[id - 1].pausedUntil == nil
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
            guard !healed, let id = target == 0 ? currentLeader() : target, isRunning(id) else { return }
            note("node \(id) shuts down gracefully")
            let local = localTime(id)
            drive(id) { $0.startDrain(now: local) }
        case .client(let index):
            sendClientRequest(index)
        case .send(let id, let incarnation, let order):
            transmit(order, from: id, incarnation: incarnation)
        case .upstreamArrival(let delivery):
            upstreamReceives(delivery)
        case .deliveryOutcome(let delivery, let response):
            deliveryFinished(delivery, response: response)
        case .heal:
            heal()
        }
    }

    /// Starts a node from its disk. A node that lost its disk and has not caught up yet starts
    /// in the no-vote state every time, as its store's "recovering" marker makes it.
    mutating func start(_ id: NodeID) {
        nodes[id - 1].incarnation += 1
        let raft = Node(
            id: id, members: members, timing: timing, initialMachine: RelayStateMachine(limits: Self.limits),
            durable: nodes[id - 1].disk, lostDisk: nodes[id - 1].recoveringMarker, seed: random.next(), now: localTime(id),
            snapshotThresholdEntries: settings.snapshotThresholdEntries, faults: options.faults)
        nodes[id - 1].engine = EngineStateMachine(
            raft: raft, settings: settings, recovering: nodes[id - 1].recoveringMarker, awaitingDiskDecision: false)
        resetVolatileState(id)
    }

    /// The process dies: what is not on its disk is gone.
    mutating func crash(_ id: NodeID) {
        nodes[id - 1].engine = nil
        nodes[id - 1].pausedUntil = nil
        nodes[id - 1].incarnation += 1
        resetVolatileState(id)
    }

    mutating func resetVolatileState(_ id: NodeID) {
        nodes[id - 1].ledTerm = nil
        nodes[id - 1].requests = [:]
        nodes[id - 1].awaitingOutcome = [:]
    }

    mutating func heal() {
        healed = true
        partitions = [:]
        blocked = []
        upstreamMix = .healthy
        note("healing: partitions end, crashed nodes restart, the upstream recovers")
        // A pause in progress runs to its end: the node's deferred disk writes and messages are
        // due then, in order.
        for id in members where nodes[id - 1].engine == nil { start(id) }
    }

    // MARK: clients

    static func clientEvent(_ random: inout SplitMix64) -> [UInt8] {
        let key = "host-\(random.next() % 6)"
        let action = ["trigger", "trigger", "acknowledge", "resolve", "resolve"][Int(random.next() % 5)]
        let routingKey = "simroutingkey" + String(repeating: "0", count: 18) + "\(random.next() % 2)"
        let payload = action == "trigger" ? #","payload":{"summary":"down \#(random.next() % 3)","source":"sim","severity":"error"}"# : ""
        return Array(#"{"routing_key":"\#(routingKey)","event_action":"\#(action)","dedup_key":"\#(key)"\#(payload)}"#.utf8)
    }

    /// A client sends its event to a node (any node: a follower refuses it, as it would
    /// forward it). Without an answer of success it tries again, with the same bytes.
    mutating func sendClientRequest(_ index: Int) {
        guard !requests[index].acknowledged, requests[index].attempts < 40 else { return }
        requests[index].attempts += 1
        let id = members[Int(random.next() % UInt64(members.count))]
        if isRunning(id) {
            let event = try! EventValidator.validate(body: requests[index].body, api: .v2Alert).get()
            let acceptance = Acceptance(event, assignedKey: "k\(random.next())", receivedAtMilliseconds: now)
            let request = nextRequestID
            nextRequestID += 1
            nodes[id - 1].requests[request] = (index, AcceptanceID(acceptance))
            let local = localTime(id)
            drive(id) { $0.submit(.accept(acceptance), request: request, holdDeadlineMilliseconds: nil, now: local) }
        }
        schedule(at: now + 300, .client(request: index))
    }
}
