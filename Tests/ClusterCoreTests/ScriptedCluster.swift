import ClusterCore

/// The simplest replicated state machine: it adds numbers, and remembers them in order.
struct Counter: ReplicatedStateMachine {
    var applied: [Int] = []
    mutating func apply(_ command: Int) -> Int {
        applied.append(command)
        return applied.reduce(0, +)
    }
    static func replicationBytes(of command: Int) -> Int { 8 }
}

/// A cluster driven step by step by a test, so each scenario reads as a transcript. Writes are
/// durable at once; messages wait in `network` until the script delivers them (`run` delivers
/// everything that is not cut off, every millisecond).
struct ScriptedCluster {
    typealias Node = RaftNode<Counter>

    var timing = ClusterTiming(
        heartbeatIntervalMilliseconds: 50, minimumElectionTimeoutMilliseconds: 500, maxClockDrift: 0.1, upstreamTimeoutMilliseconds: 300,
        deliveryMarginMilliseconds: 20)
    var nodes: [NodeID: Node] = [:]
    var durable: [NodeID: DurableState<Counter>] = [:]
    var rates: [NodeID: Double] = [:]
    var network: [Message<Counter>] = []
    var cut: Set<[NodeID]> = []
    var paused: Set<NodeID> = []
    var now: Int64 = 0
    let members: [NodeID]
    var snapshotThreshold = 1_000
    var faults: ProtocolFaults

    init(size: Int = 3, rates: [NodeID: Double] = [:], snapshotThreshold: Int = 1_000, faults: ProtocolFaults = .none) {
        members = Array(1...size)
        self.snapshotThreshold = snapshotThreshold
        self.faults = faults
        for id in members {
            self.rates[id] = rates[id] ?? 1
            start(id)
        }
    }

    func local(_ id: NodeID) -> Int64 { Int64(Double(now) * rates[id]!) }

    mutating func start(_ id: NodeID, lostDisk: Bool = false) {
        if lostDisk { durable[id] = nil }
        nodes[id] = Node(
            id: id, members: members, timing: timing, initialMachine: Counter(), durable: durable[id], lostDisk: lostDisk,
            seed: UInt64(id) * 7_919, now: local(id), snapshotThresholdEntries: snapshotThreshold, faults: faults)
    }

    mutating func crash(_ id: NodeID) {
        nodes[id] = nil
        network.removeAll { $0.to == id }
    }

    /// Isolates `id` from every other node, both ways.
    mutating func isolate(_ id: NodeID) {
        for other in members where other != id {
            cut.insert([id, other])
            cut.insert([other, id])
        }
    }

    mutating func heal() { cut = [] }

    mutating func handle(_ id: NodeID, _ ready: Node.Ready) {
        var state = durable[id] ?? DurableState(hardState: HardState(term: 0, votedFor: nil), snapshot: nil, entries: [])
        state.write(ready)
        durable[id] = state
        network.append(contentsOf: ready.messages)
        if !ready.entries.isEmpty || ready.snapshot != nil || ready.compactedThrough != nil {
            let now = local(id)
            if let next = nodes[id]?.persisted(through: state.lastIndex, now: now) { handle(id, next) }
        }
    }

    /// Delivers one message now, unless it is cut off or its target is down.
    mutating func deliver(_ message: Message<Counter>) {
        guard !cut.contains([message.from, message.to]), !paused.contains(message.to), nodes[message.to] != nil else { return }
        let ready = nodes[message.to]!.receive(message, now: local(message.to))
        handle(message.to, ready)
    }

    /// Runs the cluster for `milliseconds`: every node ticks and every message is delivered,
    /// each millisecond. Paused nodes neither tick nor receive (their messages wait).
    mutating func run(_ milliseconds: Int64, check: (inout ScriptedCluster) -> Void = { _ in }) {
        for _ in 0..<milliseconds {
            now += 1
            for id in members where nodes[id] != nil && !paused.contains(id) {
                let ready = nodes[id]!.tick(now: local(id))
                handle(id, ready)
            }
            let pending = network
            network = []
            for message in pending {
                if paused.contains(message.to) { network.append(message) } else { deliver(message) }
            }
            check(&self)
        }
    }

    struct NoLeader: Error {}

    /// The leader of the highest term, if any.
    var leader: NodeID? {
        members.filter { nodes[$0]?.role == .leader }.max { nodes[$0]!.term < nodes[$1]!.term }
    }

    /// Nodes that believe they hold a valid lease right now.
    var leaseHolders: [NodeID] { members.filter { (nodes[$0]?.leaseRemainingMilliseconds(now: local($0)) ?? 0) > 0 } }

    /// Elects a leader, has it commit `values` one at a time (`millisecondsEach` apart), then
    /// brings one follower back on an empty disk.
    mutating func followerBackOnAnEmptyDisk(after values: ClosedRange<Int>, millisecondsEach: Int64) throws -> (
        leader: NodeID, replaced: NodeID
    ) {
        run(2_000)
        guard let leader else { throw NoLeader() }
        for value in values {
            _ = propose([value], at: leader)
            run(millisecondsEach)
        }
        let replaced = members.first { $0 != leader }!
        crash(replaced)
        start(replaced, lostDisk: true)
        return (leader, replaced)
    }

    mutating func propose(_ values: [Int], at id: NodeID) -> [LogIndex]? {
        guard let (indexes, ready) = nodes[id]!.propose(values, now: local(id)) else { return nil }
        handle(id, ready)
        return indexes
    }
}
