/// The log as one node holds it: a snapshot up to `snapshotIndex`, then entries.
struct RaftLog<Machine: ReplicatedStateMachine>: Sendable {
    private(set) var snapshot: Snapshot<Machine>?
    private(set) var entries: [Entry<Machine.Command>]

    init(snapshot: Snapshot<Machine>?, entries: [Entry<Machine.Command>]) {
        self.snapshot = snapshot
        self.entries = entries
        precondition(
            entries.enumerated().allSatisfy { $0.element.index == snapshotIndex + 1 + LogIndex($0.offset) },
            "log entries are not contiguous after the snapshot")
    }

    var snapshotIndex: LogIndex { snapshot?.index ?? 0 }
    var snapshotTerm: Term { snapshot?.term ?? 0 }
    var lastIndex: LogIndex { entries.last?.index ?? snapshotIndex }
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
    }

    /// Drops every entry after `index`.
    mutating func truncate(after index: LogIndex) {
        precondition(index >= snapshotIndex, "cannot truncate into the snapshot")
        entries.removeLast(Int(lastIndex - index))
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
    }
}
