/// The log as one node holds it: a snapshot up to `snapshotIndex`, then entries.
struct RaftLog<Machine: ReplicatedStateMachine>: Sendable {
    private(set) var snapshot: Snapshot<Machine>? {
        didSet {
            snapshotIndex = snapshot?.index ?? 0
            snapshotTerm = snapshot?.term ?? 0
        }
    }
    /// The snapshot's index and term, kept beside it: reading them through the optional copied
    /// the whole snapshot (the state machine's every table) in unspecialized generic code, at
    /// every `term(at:)` (a third of a simulator run's time, before).
    private(set) var snapshotIndex: LogIndex
    private(set) var snapshotTerm: Term
    private(set) var entries: [Entry<Machine.Command>]
    /// What the entries take (`Machine.replicationBytes`), kept as they come and go: compaction
    /// is bounded by bytes as well as by count, since one entry may hold a 512-KB event.
    private(set) var entryBytes: Int

    init(snapshot: Snapshot<Machine>?, entries: [Entry<Machine.Command>]) {
        self.snapshot = snapshot
        snapshotIndex = snapshot?.index ?? 0
        snapshotTerm = snapshot?.term ?? 0
        self.entries = entries
        entryBytes = entries.reduce(0) { $0 + Self.bytes(of: $1) }
        precondition(
            entries.enumerated().allSatisfy { $0.element.index == snapshotIndex + 1 + LogIndex($0.offset) },
            "log entries are not contiguous after the snapshot")
    }

    /// From the count, not from the last entry: the entries follow the snapshot without a gap
    /// (`init`, `append`), and reading the last one copies it, command and all, through
    /// unspecialized generic code (16% of a simulator run's time, before).
    var lastIndex: LogIndex { snapshotIndex + LogIndex(entries.count) }
    var lastTerm: Term { entries.last?.term ?? snapshotTerm }

    /// The term of the entry at `index`; nil if it is compacted away (below the snapshot) or
    /// beyond the end.
    func term(at index: LogIndex) -> Term? {
        if index == snapshotIndex { return snapshotTerm }
        guard index > snapshotIndex, index <= lastIndex else { return nil }
        return entries[Int(index - snapshotIndex - 1)].term
    }

    func entry(at index: LogIndex) -> Entry<Machine.Command> {
        precondition(index > snapshotIndex && index <= lastIndex, "entry \(index) is not in the log")
        return entries[Int(index - snapshotIndex - 1)]
    }

    func entries(from index: LogIndex, max: Int) -> [Entry<Machine.Command>] {
        guard index > snapshotIndex, index <= lastIndex else { return [] }
        let start = Int(index - snapshotIndex - 1)
        return Array(entries[start..<min(entries.count, start + max)])
    }

    mutating func append(_ entry: Entry<Machine.Command>) {
        precondition(entry.index == lastIndex + 1, "appending entry \(entry.index) after \(lastIndex)")
        entries.append(entry)
        entryBytes += Self.bytes(of: entry)
    }

    /// Drops every entry after `index`.
    mutating func truncate(after index: LogIndex) {
        precondition(index >= snapshotIndex, "cannot truncate into the snapshot")
        let dropped = Int(lastIndex - index)
        entryBytes -= entries.suffix(dropped).reduce(0) { $0 + Self.bytes(of: $1) }
        entries.removeLast(dropped)
    }

    /// Replaces the prefix up to the snapshot's index by the snapshot, keeping later entries only
    /// if the log agrees with the snapshot at its index.
    mutating func install(_ newSnapshot: Snapshot<Machine>) {
        let keep: [Entry<Machine.Command>]
        if term(at: newSnapshot.index) == newSnapshot.term {
            keep = entries.filter { $0.index > newSnapshot.index }
        } else {
            keep = []
        }
        snapshot = newSnapshot
        entries = keep
        entryBytes = keep.reduce(0) { $0 + Self.bytes(of: $1) }
    }

    private static func bytes(of entry: Entry<Machine.Command>) -> Int {
        entry.command.map(Machine.replicationBytes(of:)) ?? 0
    }
}
