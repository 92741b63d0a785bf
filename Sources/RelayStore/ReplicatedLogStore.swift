import ClusterCore
import EngineCore
import RelayCore
import RelayReplication

/// The replicated log's half of the store: the term, the vote, the log entries, and the applied
/// state. The queue and dedup tables hold the state machine at `applied_index`, so they double
/// as the snapshot: a restart rebuilds the machine from them and replays the entries after it.
extension RelayStore {
    /// What a node restarts from.
    public struct Recovered: Sendable {
        public let durable: DurableState<RelayStateMachine>
        /// The machine at `durable.snapshot` (or the empty one at index 0), for the core's init.
        public let machine: RelayStateMachine
        public let recovering: Bool
        /// True when the store had never been written by the replicated log: a brand-new node.
        public let isFresh: Bool
    }

    public func recover(limits: RelayStateMachine.Limits) async throws -> Recovered {
        let contents = try await load()
        return try await run { store in
            let c = store.connection
            let meta = { (name: String) throws -> Int64? in try c.scalar("SELECT value FROM meta WHERE name = '\(name)'") }
            let appliedIndex = LogIndex(try meta("applied_index") ?? 0)
            let appliedTerm = Term(try meta("applied_term") ?? 0)
            let votedFor = try meta("raft_voted_for")
            let hardState = HardState(term: Term(try meta("raft_term") ?? 0), votedFor: votedFor.flatMap { $0 < 0 ? nil : Int($0) })
            let select = store.statements.selectEntries
            select.bind([.integer(Int64(appliedIndex))])
            var entries: [Entry<RelayCommand>] = []
            while try select.step() {
                let blob = select.optionalInt64(2) == nil ? nil : select.blob(2)
                entries.append(
                    Entry(term: Term(select.int64(1)), index: LogIndex(select.int64(0)), command: try blob.map(RelayCommand.init(encoded:)))
                )
            }
            let machine = RelayStateMachine(limits: limits, contents: contents)
            let snapshot = appliedIndex > 0 ? Snapshot(index: appliedIndex, term: appliedTerm, machine: machine) : nil
            Self.check(appliedIndex: appliedIndex, appliedTerm: appliedTerm, entries: entries)
            return Recovered(
                durable: DurableState(hardState: hardState, snapshot: snapshot, entries: entries), machine: machine,
                recovering: try meta("cluster_recovering") == 1, isFresh: try meta("raft_term") == nil)
        }
    }

    /// What this store writes always reads back this way; anything else is a damaged file or a
    /// bug in the writer, and running on it could apply a log with a hole, or with terms out of
    /// order. The node stops with the reason instead.
    static func check(appliedIndex: LogIndex, appliedTerm: Term, entries: [Entry<RelayCommand>]) {
        precondition((appliedIndex == 0) == (appliedTerm == 0), "applied index \(appliedIndex) with applied term \(appliedTerm)")
        var previous = (index: appliedIndex, term: appliedTerm)
        for entry in entries {
            precondition(entry.index == previous.index + 1, "the log has a hole: entry \(entry.index) follows \(previous.index)")
            precondition(entry.term >= previous.term, "entry \(entry.index) has term \(entry.term), after term \(previous.term)")
            previous = (entry.index, entry.term)
        }
        // The queue tables are checked by `RelayStateMachine`'s own init.
    }

    /// Writes the steps in order, in one transaction, synced before this returns.
    public func write(_ steps: [StoreStep]) async throws {
        guard !steps.isEmpty else { return }
        try await run { store in
            try store.transaction {
                for step in steps { try store.apply(step) }
                try store.compactSome()
            }
        }
    }

    /// Drops up to `maxCompactedEntriesPerWrite` of the oldest compacted entries. Recovery reads
    /// only entries after the applied index, so ones not yet dropped are never used.
    private func compactSome() throws {
        guard compactionTarget > 0 else { return }
        try statements.compactStep.run([.integer(compactionTarget), .integer(Self.maxCompactedEntriesPerWrite)])
        if connection.changes < Self.maxCompactedEntriesPerWrite { compactionTarget = 0 }
    }

    private func apply(_ step: StoreStep) throws {
        let s = statements
        switch step {
        case .hardState(let hardState):
            try s.putMeta.run([.text("raft_term"), .integer(Int64(hardState.term))])
            try s.putMeta.run([.text("raft_voted_for"), .integer(Int64(hardState.votedFor ?? -1))])
        case .truncate(let after):
            try s.truncateLog.run([.integer(Int64(after))])
        case .entries(let entries):
            for entry in entries {
                try s.putEntry.run([.integer(Int64(entry.index)), .integer(Int64(entry.term)), entry.command.map { .blob($0.encoded) }])
            }
        case .applied(let index, let term, let mutations):
            for mutation in mutations { try apply(mutation) }
            try s.putMeta.run([.text("applied_index"), .integer(Int64(index))])
            try s.putMeta.run([.text("applied_term"), .integer(Int64(term))])
        case .install(let snapshot):
            try connection.execute(
                "DELETE FROM events; DELETE FROM dedup; DELETE FROM attempts; DELETE FROM intents; DELETE FROM incidents; DELETE FROM windows; DELETE FROM held; DELETE FROM heartbeats; DELETE FROM digests; DELETE FROM drills;"
            )
            let contents = snapshot.machine.contents
            for event in contents.events { try apply(.putEvent(event)) }
            for entry in contents.dedupEntries { try apply(.putDedup(entry)) }
            for intent in contents.intents { try apply(.putIntent(intent)) }
            for folder in contents.folders { try apply(.putFolder(folder)) }
            for window in contents.windows { try apply(.putWindow(window)) }
            for event in contents.held { try apply(.putHeld(event)) }
            for heartbeat in contents.heartbeats { try apply(.putHeartbeat(heartbeat)) }
            for digest in contents.digests { try apply(.putDigest(digest)) }
            for drill in contents.drills { try apply(.putDrill(drill)) }
            try apply(.setNextWindowID(contents.nextWindowID))
            try apply(.setNextEventNumber(contents.nextEventNumber))
            try s.putMeta.run([.text("applied_index"), .integer(Int64(snapshot.index))])
            try s.putMeta.run([.text("applied_term"), .integer(Int64(snapshot.term))])
            s.termAt.bind([.integer(Int64(snapshot.index))])
            let agrees = try s.termAt.step() && Term(s.termAt.int64(0)) == snapshot.term
            try (agrees ? s.compactLog : s.truncateLog).run([.integer(agrees ? Int64(snapshot.index) : -1)])
        case .compact(let index):
            // The tables already hold this state (and more): only the log's prefix goes.
            compactionTarget = max(compactionTarget, Int64(index))
        case .recovering(let recovering):
            try s.putMeta.run([.text("cluster_recovering"), .integer(recovering ? 1 : 0)])
        }
    }
}
