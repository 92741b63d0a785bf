import ClusterCore

/// A cluster that moves only when a transcript says so, and says everything it does: every
/// `Ready` (what it writes, what it applies, what it sends) and every message delivered. The
/// transcripts in `testdata/` pin the protocol's message sequences, in the style of etcd raft's
/// `testdata/*.txt`: a change in what a node sends, or when, fails a test instead of passing
/// silently.
///
/// Commands, one per line:
/// - `cluster N`: nodes 1…N, all followers in term 0;
/// - `tick NODE MS`: the clock moves MS milliseconds, and NODE alone looks at it;
/// - `propose NODE V…`: NODE proposes the commands V…;
/// - `deliver FROM->TO` (or `deliver all`): the messages waiting on that link, in order;
/// - `drop FROM->TO` (or `drop all`): they are lost;
/// - `duplicate FROM->TO` (or `duplicate all`): each waits there twice, as a retrying network
///   delivers it;
/// - `crash NODE`, `restart NODE`: NODE stops (what waits for it is lost), and starts again from
///   what it wrote;
/// - `status`: each node's role, term, leader, log and commit index.
struct TranscriptCluster {
    typealias Node = RaftNode<Counter>

    let timing = ClusterTiming(
        heartbeatIntervalMilliseconds: 50, minimumElectionTimeoutMilliseconds: 500, maxClockDrift: 0.1, upstreamTimeoutMilliseconds: 300,
        deliveryMarginMilliseconds: 20)
    var members: [NodeID] = []
    var nodes: [NodeID: Node] = [:]
    var durable: [NodeID: DurableState<Counter>] = [:]
    var waiting: [Message<Counter>] = []
    var now: Int64 = 0

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// Carries out one command and returns what it printed.
    mutating func run(_ line: String) throws -> [String] {
        let words = line.split(separator: " ").map(String.init)
        guard let command = words.first else { throw Failure(description: "an empty command") }
        let arguments = Array(words.dropFirst())
        switch command {
        case "cluster":
            members = Array(1...(try number(arguments, 0)))
            for id in members { start(id) }
            return status()
        case "tick":
            let id = try node(arguments, 0)
            now += Int64(try number(arguments, 1))
            return process(id, nodes[id]!.tick(now: now))
        case "propose":
            let id = try node(arguments, 0)
            let values = try arguments.dropFirst().map { word in
                guard let value = Int(word) else { throw Failure(description: "not a number: \(word)") }
                return value
            }
            guard let (indexes, ready) = nodes[id]!.propose(values, now: now) else { return ["node \(id) refused: not the leader"] }
            return ["node \(id) proposed at \(indexes.map(String.init).joined(separator: ", "))"] + process(id, ready)
        case "deliver", "drop":
            let link = try self.link(arguments)
            let chosen = waiting.filter { link.matches($0) }
            waiting.removeAll { link.matches($0) }
            guard command == "deliver" else { return chosen.map { "dropped " + Self.describe($0) } }
            var lines: [String] = []
            for message in chosen {
                lines.append("delivered " + Self.describe(message))
                guard nodes[message.to] != nil else { continue }
                lines += process(message.to, nodes[message.to]!.receive(message, now: now))
            }
            return lines.isEmpty ? ["nothing waits on that link"] : lines
        case "duplicate":
            let link = try self.link(arguments)
            let copies = waiting.filter { link.matches($0) }
            waiting += copies
            return copies.map { "duplicated " + Self.describe($0) }
        case "crash":
            let id = try node(arguments, 0)
            nodes[id] = nil
            waiting.removeAll { $0.to == id }
            return ["node \(id) crashed"]
        case "restart":
            let id = try node(arguments, 0, mayBeDown: true)
            start(id)
            return status().filter { $0.hasPrefix("node \(id):") }
        case "status":
            return status()
        default:
            throw Failure(description: "unknown command \(command)")
        }
    }

    private mutating func start(_ id: NodeID) {
        nodes[id] = Node(
            id: id, members: members, timing: timing, initialMachine: Counter(), durable: durable[id], seed: UInt64(id) * 7_919,
            now: now)
    }

    /// Writes the Ready, queues its messages, reports what the write made durable, and prints
    /// all of it.
    private mutating func process(_ id: NodeID, _ ready: Node.Ready) -> [String] {
        var state = durable[id] ?? DurableState(hardState: HardState(term: 0, votedFor: nil), snapshot: nil, entries: [])
        state.write(ready)
        durable[id] = state
        waiting += ready.messages
        var lines = Self.describe(id, ready)
        if !ready.entries.isEmpty || ready.snapshot != nil || ready.compactedThrough != nil {
            lines += process(id, nodes[id]!.persisted(through: state.lastIndex, now: now))
        }
        return lines
    }

    private func status() -> [String] {
        members.map { id in
            guard let node = nodes[id] else { return "node \(id): down" }
            let leader = node.leaderID.map { " leader \($0)" } ?? ""
            return "node \(id): \(node.role.rawValue) term \(node.term)\(leader) log \(node.lastLogIndex)/\(node.lastLogTerm)"
                + " commit \(node.commitIndex)"
        }
    }

    // MARK: parsing

    private struct Link {
        let from: NodeID?
        let to: NodeID?
        func matches(_ message: Message<Counter>) -> Bool { (from ?? message.from) == message.from && (to ?? message.to) == message.to }
    }

    private func link(_ arguments: [String]) throws -> Link {
        guard let word = arguments.first else { throw Failure(description: "which link?") }
        if word == "all" { return Link(from: nil, to: nil) }
        let ends = word.split(separator: "-").map { $0.trimmingPrefix(">") }
        guard ends.count == 2, let from = NodeID(ends[0]), let to = NodeID(ends[1]) else {
            throw Failure(description: "not a link: \(word) (FROM->TO)")
        }
        return Link(from: from, to: to)
    }

    private func number(_ arguments: [String], _ position: Int) throws -> Int {
        guard position < arguments.count, let value = Int(arguments[position]), value >= 0 else {
            throw Failure(description: "argument \(position + 1) must be a number")
        }
        return value
    }

    private func node(_ arguments: [String], _ position: Int, mayBeDown: Bool = false) throws -> NodeID {
        let id = try number(arguments, position)
        guard members.contains(id) else { throw Failure(description: "no node \(id)") }
        guard mayBeDown || nodes[id] != nil else { throw Failure(description: "node \(id) is down") }
        return id
    }

    // MARK: printing

    static func describe(_ id: NodeID, _ ready: Node.Ready) -> [String] {
        var parts: [String] = []
        if let hardState = ready.hardState {
            parts.append("hard state term \(hardState.term) vote \(hardState.votedFor.map(String.init) ?? "none")")
        }
        if let snapshot = ready.snapshot { parts.append("snapshot \(snapshot.index)/\(snapshot.term)") }
        if let compacted = ready.compactedThrough { parts.append("compacted through \(compacted)") }
        if let after = ready.truncateAfter { parts.append("truncate after \(after)") }
        if !ready.entries.isEmpty { parts.append("entries " + ready.entries.map(describe).joined(separator: " ")) }
        if !ready.applied.isEmpty {
            parts.append("applied " + ready.applied.map { "\($0.index)/\($0.term)" }.joined(separator: " "))
        }
        guard !parts.isEmpty || !ready.messages.isEmpty else { return [] }
        return ["node \(id): " + (parts.isEmpty ? "sends" : parts.joined(separator: "; "))]
            + ready.messages.map { "  " + describe($0) }
    }

    static func describe(_ entry: Entry<Int>) -> String {
        "\(entry.index)/\(entry.term)" + (entry.command.map { ":\($0)" } ?? ":-")
    }

    static func describe(_ message: Message<Counter>) -> String {
        let body: String
        switch message.body {
        case .preVoteRequest(let index, let term): body = "pre-vote request last \(index)/\(term)"
        case .preVoteResponse(let granted): body = "pre-vote " + (granted ? "granted" : "refused")
        case .voteRequest(let index, let term, let transfer): body = "vote request last \(index)/\(term)" + (transfer ? " transfer" : "")
        case .voteResponse(let granted): body = "vote " + (granted ? "granted" : "refused")
        case .append(let prevIndex, let prevTerm, let entries, let commit, let round):
            body = "append after \(prevIndex)/\(prevTerm) [\(entries.map(describe).joined(separator: " "))] commit \(commit) round \(round)"
        case .appendResponse(let success, let match, let round):
            body = "append " + (success ? "ok" : "refused") + " match \(match) round \(round)"
        case .installSnapshot(let snapshot, let round): body = "snapshot \(snapshot.index)/\(snapshot.term) round \(round)"
        case .snapshotResponse(let match, let round): body = "snapshot taken match \(match) round \(round)"
        case .heartbeat(let commit, let round): body = "heartbeat commit \(commit) round \(round)"
        case .heartbeatResponse(let last, let round): body = "heartbeat answer last \(last) round \(round)"
        case .timeoutNow: body = "timeout now"
        }
        return "\(message.from)->\(message.to) term \(message.term) \(body)"
    }
}
