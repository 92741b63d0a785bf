import ClusterCore
import EngineCore
import RelayCore
import RelayReplication

/// The invariants of `design/cluster.md`, checked from outside the nodes: from what their disks
/// hold, what they send, what they answer and what reaches the upstream. None of them asks the
/// engine whether it did right.
extension Simulation {
    /// After each input to a node: election safety, and leader completeness for a new leader.
    mutating func noteLeadership(_ id: NodeID) {
        guard let raft = nodes[id - 1].engine?.raft else { return }
        if raft.role == .leader, nodes[id - 1].ledTerm != raft.term {
            if let other = leaders[raft.term], other != id {
                violation = "election safety: nodes \(other) and \(id) both lead term \(raft.term)"
                return
            }
            leaders[raft.term] = id
            leaderChanges += 1
            note("node \(id) leads term \(raft.term)")
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
        } else if raft.role != .leader {
            nodes[id - 1].ledTerm = nil
        }
    }

    /// A node applied a committed entry: state machine safety, and what clients and deliveries
    /// may now rely on.
    mutating func record(_ applied: Node.Applied, on id: NodeID) {
        if let known = committed[applied.index] {
            guard known.term == applied.term, known.command == applied.command else {
                violation = "state machine safety: node \(id) applied a different entry at index \(applied.index)"
                return
            }
        } else {
            committed[applied.index] = (applied.term, applied.command, nodes[id - 1].engine?.raft.term ?? applied.term)
        }
        switch applied.command {
        case .accept(let acceptance)?, .acceptAndOpenIntent(let acceptance, _)?:
            appliedAcceptances.insert(AcceptanceID(acceptance))
        case .recordAttempt(let number, _)?, .recordAttemptAndOpenIntent(let number, _, _)?:
            for (key, waiting) in nodes[id - 1].awaitingOutcome where waiting.eventNumber == number {
                nodes[id - 1].awaitingOutcome[key] = nil
            }
        default: break
        }
    }

    /// The first time any node's commit index passes an entry, that entry must be on a majority
    /// of disks: otherwise crashes could lose what a client was told is safe.
    mutating func checkCommitDurability(_ id: NodeID) {
        guard violation == nil, let raft = nodes[id - 1].engine?.raft, raft.commitIndex > highestCommit else { return }
        let majority = members.count / 2 + 1
        for index in (highestCommit + 1)...raft.commitIndex {
            guard let term = raft.term(at: index) else { continue }
            let copies = members.filter { nodes[$0 - 1].disk?.holds(index: index, term: term) ?? false }.count
            // A node that has lost its disk since may have acknowledged the entry before, and
            // its late acknowledgement may be what commits it: it is excused while it catches up
            // (it does not vote meanwhile, and the fault model keeps a majority of disks).
            let lostSince = members.filter { nodes[$0 - 1].recoveringMarker }.count
            if copies + lostSince < majority {
                violation =
                    "commit durability: node \(id) committed entry \(index) of term \(term) while it was on \(copies) of \(members.count) disks"
                return
            }
        }
        highestCommit = raft.commitIndex
    }

    /// An acknowledgement of entries or a granted vote promises what is on the sender's disk.
    mutating func checkDurableBeforeAcknowledged(_ message: Message<RelayStateMachine>) {
        guard violation == nil else { return }
        let disk = nodes[message.from - 1].disk
        switch message.body {
        case .appendResponse(success: true, let matchIndex, _), .snapshotResponse(let matchIndex, _):
            let durable = disk?.lastIndex ?? 0
            if matchIndex > durable {
                violation =
                    "durable before acknowledged: node \(message.from) acknowledged index \(matchIndex) with only \(durable) on its disk"
            }
        case .voteResponse(granted: true):
            // A disk already in a later term is fine: the grant waited behind that write, and
            // the node can no longer vote in the grant's term at all.
            let hardState = disk?.hardState ?? HardState(term: 0, votedFor: nil)
            if hardState.term < message.term || hardState.term == message.term && hardState.votedFor != message.to {
                violation =
                    "durable before acknowledged: node \(message.from) granted its vote in term \(message.term) before writing it (its disk holds term \(disk?.hardState.term ?? 0), vote \(disk?.hardState.votedFor.map(String.init) ?? "none"))"
            }
        default: break
        }
    }

    /// A request reaches the upstream: per-key fencing and per-key order.
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

    /// A key's next attempt of a term waits for the outcome of its last one (or until that
    /// outcome's commit has timed out): its send, until the outcome is applied; its intent, until
    /// the outcome's entry is ahead of it in the log, so that the intent cannot commit without it.
    mutating func checkOutcomeBeforeNextAttempt(key: OrderingKey, eventNumber: UInt64, term: Term, isIntent: Bool, on id: NodeID) {
        guard violation == nil, let waiting = nodes[id - 1].awaitingOutcome[key], waiting.term == term,
            localTime(id) - waiting.sinceLocal < Self.commitTimeoutMilliseconds, !(isIntent && waiting.logged)
        else { return }
        violation =
            "outcome before next attempt: node \(id) started event \(eventNumber) in term \(term) before the outcome of event \(waiting.eventNumber) of the same key was \(isIntent ? "in its log" : "applied")"
    }

    /// A leader's write holds entries in log order: an outcome written here precedes whatever
    /// this term appends after it.
    mutating func noteOutcomeLogged(eventNumber: UInt64, on id: NodeID) {
        for (key, waiting) in nodes[id - 1].awaitingOutcome where waiting.eventNumber == eventNumber {
            nodes[id - 1].awaitingOutcome[key]?.logged = true
        }
    }

    mutating func checkInvariants() {
        guard violation == nil else { return }
        var leaseHolders: [NodeID] = []
        for id in members where nodes[id - 1].engine?.raft.leaseRemainingMilliseconds(now: localTime(id)) ?? 0 > 0 {
            leaseHolders.append(id)
        }
        if leaseHolders.count > 1 {
            violation = "lease safety: nodes \(leaseHolders) all hold a valid lease"
        }
        if steps % 64 == 0 { checkLogMatching() }
    }

    mutating func checkLogMatching() {
        let logs = members.compactMap { id in nodes[id - 1].engine.map { (id, $0.raft) } }
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
        guard let leaderID = members.first(where: { nodes[$0 - 1].engine?.raft.role == .leader }),
            let leader = nodes[leaderID - 1].engine?.raft
        else {
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
            guard let node = nodes[id - 1].engine?.raft else { continue }
            if node.lastApplied != leader.commitIndex {
                violation = "convergence: node \(id) applied \(node.lastApplied), the leader committed \(leader.commitIndex)"
                return
            }
            let (mine, leaders) = (node.machine.contents, leader.machine.contents)
            let parts: [(String, Bool)] = [
                ("queue", mine.events == leaders.events), ("dedup table", mine.dedupEntries == leaders.dedupEntries),
                ("intents", mine.intents == leaders.intents), ("incident folders", mine.folders == leaders.folders),
            ]
            if let (part, _) = parts.first(where: { !$0.1 }) {
                violation = "convergence: node \(id)'s \(part) differs from the leader's"
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
