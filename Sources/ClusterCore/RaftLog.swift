/// The log as one node holds it: entries after `snapshotIndex`, everything up to which is
/// applied (and in the state machine, which is the snapshot).
///
/// It keeps no copy of the state machine at `snapshotIndex`. It once did, and that copy shared
/// every table with the live machine until the next change to each copied it whole: with
/// 10,000 incidents, each compaction cost tens of milliseconds on every node, the tail of the
/// ingest latency. A leader makes a snapshot to send from its live machine when a follower
/// needs one (`RaftNode.snapshotForPeers`).
struct RaftLog<Machine: ReplicatedStateMachine>: Sendable {
    private(set) var snapshotIndex: LogIndex
    private(set) var snapshotTerm: Term
    private(set) var entries: [Entry<Machine.Command>]
    /// What the entries take (`Machine.replicationBytes`), kept as they come and go: compaction
    /// is bounded by bytes as well as by count, since one entry may hold a 512-KB event.
    private(set) var entryBytes: Int

    init(snapshot: Snapshot<Machine>?, entries: [Entry<Machine.Command>]) {
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

    /// Drops the prefix up to `index` (of `term`), which a snapshot or the applied state
    /// covers, keeping later entries only if the log agrees with it there.
    mutating func compact(through index: LogIndex, term indexTerm: Term) {
        let keep: [Entry<Machine.Command>]
        if term(at: index) == indexTerm {
            keep = entries.filter { $0.index > index }
        } else {
            keep = []
        }
        snapshotIndex = index
        snapshotTerm = indexTerm
        entries = keep
        entryBytes = keep.reduce(0) { $0 + Self.bytes(of: $1) }
    }

    private static func bytes(of entry: Entry<Machine.Command>) -> Int {
        entry.command.map(Machine.replicationBytes(of:)) ?? 0
    }
}
