import SeededRandom

/// One node of the replication protocol: Raft (Ongaro & Ousterhout 2014) with pre-vote and a
/// leader lease (Ongaro's thesis §9.6, §6.4), as a deterministic state machine. It does no I/O:
/// every input carries the node's monotonic time, randomness comes from a seeded generator, and
/// every effect is returned in a `Ready` for the shell to carry out.
///
/// The shell carries out `Ready`s in the order they are returned, each one completely before the
/// next: a later Ready's messages may speak for entries an earlier one is still writing (a
/// heartbeat's acknowledgement claims everything the log holds). For each `Ready`, in this order:
/// 1. make durable, in one fsync'd transaction: `hardState`; `truncateAfter` (drop later
///    entries); `entries`; then `snapshot` (a leader's, which replaces the state and every entry
///    up to its index that does not agree with it); entries up to `compactedThrough` may then
///    be dropped (they are applied, and may be in the same `Ready`);
/// 2. only then send `messages` (a vote or an acknowledgement is a promise about the disk),
///    except heartbeats, which `Ready.takeHeartbeats` hands over to send at once;
/// 3. hand `applied` results to the clients waiting for them;
/// 4. call `persisted(through:now:)` with the last index it made durable.
public struct RaftNode<Machine: ReplicatedStateMachine>: Sendable {
    public typealias Command = Machine.Command

    public struct Applied: Sendable {
        public let index: LogIndex
        public let term: Term
        public let command: Command?
        public let result: Machine.Result?
    }

    public struct Ready: Sendable {
        public var hardState: HardState?
        /// A snapshot from the leader, installed: the whole state at its index.
        public var snapshot: Snapshot<Machine>?
        /// The in-memory log no longer holds entries up to this index; they are applied (in
        /// this or an earlier `Ready`), so a store that keeps the applied state may drop them.
        public var compactedThrough: LogIndex?
        public var truncateAfter: LogIndex?
        public var entries: [Entry<Command>] = []
        public var messages: [Message<Machine>] = []
        public var applied: [Applied] = []

        public var needsPersistence: Bool {
            hardState != nil || snapshot != nil || compactedThrough != nil || truncateAfter != nil || !entries.isEmpty
        }

        /// Takes out the messages that may leave at once, ahead of this and earlier Readys'
        /// writes (the shell's current one has run `writeRunningForMilliseconds`): heartbeats
        /// and their answers, unless this Ready changes the term or vote. A follower busy writing
        /// bulk data still answers, and a leader's fsync hiccup costs no election. A leader's
        /// own heartbeats stop overtaking once its write has run
        /// `ClusterTiming.diskStallToleranceMilliseconds`: a leader whose disk is stuck cannot
        /// answer clients, and must let the followers elect another.
        public mutating func takeHeartbeats(writeRunningForMilliseconds: Int64, timing: ClusterTiming) -> [Message<Machine>] {
            guard hardState == nil else { return [] }
            let leaderMaySend = writeRunningForMilliseconds < timing.diskStallToleranceMilliseconds
            let mayLeave = { (message: Message<Machine>) -> Bool in
                switch message.body {
                case .heartbeat: leaderMaySend
                case .heartbeatResponse: true
                default: false
                }
            }
            guard messages.contains(where: mayLeave) else { return [] }
            defer { messages.removeAll(where: mayLeave) }
            return messages.filter(mayLeave)
        }
    }

    public let id: NodeID
    public let members: [NodeID]
    public let timing: ClusterTiming
    public let faults: ProtocolFaults
    public static var maxEntriesPerMessage: Int { 256 }
    /// An append stops growing past this many bytes of commands (it always carries at least one
    /// entry): 256 events of 500 KB in one message would hold a link for seconds.
    public static var maxAppendBytes: Int { 1_048_576 }
    /// Appends in flight to one peer before the leader waits for an answer (flow control, as
    /// etcd's `MaxInflightMsgs`): enough to keep a link between zones busy (a window of 4 cost a
    /// fifth of the ingest at 30-ms round trips), few enough that a slow or far-behind follower
    /// does not pile more than about 32 MB up in the leader's outbox.
    public static var maxAppendsInFlight: Int { 32 }
    /// While a peer catches up (a snapshot on its way, or entries), the leader lets its log grow
    /// to this many times the snapshot threshold before it compacts (and so replaces the
    /// snapshot and drops entries that peer still needs).
    public static var snapshotHoldFactor: Int { 8 }
    /// Entries kept past this many bytes are compacted whatever their count: with events of up
    /// to 512 KB, a count alone would let the log hold gigabytes. A leader holding its log for a
    /// follower catching up (`snapshotHoldFactor`) keeps up to four times this.
    public static var maxLogBytes: Int { 64 * 1_048_576 }
    /// Applied entries kept before a snapshot replaces them.
    public let snapshotThresholdEntries: Int

    public private(set) var hardState: HardState
    private var log: RaftLog<Machine>
    public private(set) var role: Role = .follower
    public private(set) var leaderID: NodeID?
    public private(set) var commitIndex: LogIndex
    public private(set) var lastApplied: LogIndex
    public private(set) var machine: Machine
    /// The last index this node has made durable (the shell says so through `persisted`).
    public private(set) var durableIndex: LogIndex
    /// False after a restart on an empty disk, until the node has caught up to the commit index
    /// the leader had when it first heard from it: before that it may have forgotten a vote.
    public private(set) var mayVote: Bool
    private var catchUpTarget: LogIndex?
    /// How far this follower's log is known to match the current leader's: an append of this
    /// term was accepted up to here. A heartbeat commits no further, since a heartbeat says
    /// nothing about which entries the follower holds.
    private var matchedInTerm: LogIndex = 0

    private var random: SplitMix64
    private var electionDeadline: Int64
    private var lastLeaderContact: Int64?
    private var votes: Set<NodeID> = []
    // Leader state.
    private var nextIndex: [NodeID: LogIndex] = [:]
    private var matchIndex: [NodeID: LogIndex] = [:]
    /// Appends (or a snapshot) sent to each peer and not yet answered, and when that peer last
    /// answered one or was first sent one: an append lost on the way is resent after an
    /// election timeout without an answer.
    private var appendsInFlight: [NodeID: Int] = [:]
    private var appendProgressAt: [NodeID: Int64] = [:]
    private var matchAdvancedAt: [NodeID: Int64] = [:]
    /// The time of the input being handled.
    private var now: Int64 = 0
    private var round: UInt64 = 0
    private var roundSentAt: [UInt64: Int64] = [:]
    private var ackedRound: [NodeID: UInt64] = [:]
    private var leaseExpiry: Int64?
    /// When this node became leader of the current term, on its clock.
    private var leaderSince: Int64 = 0
    private var lastQuorumContact: Int64 = 0
    private var lastContact: [NodeID: Int64] = [:]
    /// The commit index the leader last told this node: how far behind a follower is.
    public private(set) var leaderCommitIndex: LogIndex = 0
    private var nextHeartbeat: Int64 = 0
    private var ready = Ready()
    /// The leader's snapshot for peers behind the log's start, kept while one may need it.
    private var snapshotForPeers: Snapshot<Machine>?

    /// Starts (or restarts) a node from what its disk holds. `lostDisk` marks a replaced node that
    /// comes back empty under the same id: it will not vote until it has caught up.
    public init(
        id: NodeID, members: [NodeID], timing: ClusterTiming, initialMachine: Machine, durable: DurableState<Machine>?,
        lostDisk: Bool = false, seed: UInt64, now: Int64, snapshotThresholdEntries: Int = 1_000, faults: ProtocolFaults = .none
    ) {
        precondition(members.contains(id), "node \(id) is not a member")
        precondition(Set(members).count == members.count, "duplicate member ids")
        self.id = id
        self.members = members.sorted()
        self.timing = timing
        self.faults = faults
        self.snapshotThresholdEntries = snapshotThresholdEntries
        var hardState = durable?.hardState ?? HardState(term: 0, votedFor: nil)
        if faults.injects(.forgetVoteOnRestart) { hardState.votedFor = nil }
        self.hardState = hardState
        log = RaftLog(snapshot: durable?.snapshot, entries: durable?.entries ?? [])
        machine = durable?.snapshot?.machine ?? initialMachine
        commitIndex = log.snapshotIndex
        lastApplied = log.snapshotIndex
        durableIndex = log.lastIndex
        mayVote = !lostDisk
        random = SplitMix64(seed: seed)
        electionDeadline = 0
        resetElectionTimer(now: now)
        // Alone, there is nobody to wait for: lead from the first tick.
        if members.count == 1 { electionDeadline = now }
    }

    // MARK: queries

    public var term: Term { hardState.term }
    public var lastLogIndex: LogIndex { log.lastIndex }
    public var lastLogTerm: Term { log.lastTerm }
    public var snapshotIndex: LogIndex { log.snapshotIndex }
    var majority: Int { members.count / 2 + 1 }
    var peers: [NodeID] { members.filter { $0 != id } }

    /// The term of the entry at `index`, if this node still has it.
    public func term(at index: LogIndex) -> Term? { log.term(at: index) }

    /// The entries this node holds after its snapshot.
    public var entries: [Entry<Command>] { log.entries }

    /// Milliseconds of lease left at `now`: while positive, no other node can be elected.
    public func leaseRemainingMilliseconds(now: Int64) -> Int64 {
        guard role == .leader, let leaseExpiry else { return 0 }
        return max(0, leaseExpiry - now)
    }

    /// The leader's view of one peer, for operators.
    public struct PeerProgress: Sendable, Equatable {
        public let id: NodeID
        public let matchIndex: LogIndex
        /// Monotonic milliseconds of the peer's last answer, if it ever answered this leader.
        public let lastContactMilliseconds: Int64?
        /// The peer needs entries this leader has compacted away: it is being sent a snapshot.
        public let needsSnapshot: Bool
        /// Monotonic milliseconds when the peer's match index last grew (or this node took
        /// office): a peer behind whose match index stands still for long is stuck.
        public let matchAdvancedAtMilliseconds: Int64
    }

    /// Each peer's replication progress; empty unless this node leads.
    public var peerProgress: [PeerProgress] {
        guard role == .leader else { return [] }
        return peers.map {
            PeerProgress(
                id: $0, matchIndex: matchIndex[$0] ?? 0, lastContactMilliseconds: lastContact[$0],
                needsSnapshot: (nextIndex[$0] ?? .max) <= log.snapshotIndex, matchAdvancedAtMilliseconds: matchAdvancedAt[$0] ?? leaderSince
            )
        }
    }

    /// Whether this node is in touch with a majority now: a leader whose majority answered within
    /// the election timeout, or a follower hearing from a leader within it (that leader steps down
    /// without a majority).
    public func hasQuorumContact(now: Int64) -> Bool {
        switch role {
        case .leader: return members.count == 1 || now - lastQuorumContact < timing.minimumElectionTimeoutMilliseconds
        case .follower: return inLeaseOfLeader(now: now)
        case .preCandidate, .candidate: return false
        }
    }

    /// Whether a send may start now: only while the lease holds (with the delivery margin to
    /// spare), so every send of this term starts before any later leader takes office. Each send
    /// also needs a committed intent (`deliveryFence`), and a key an older term may still be
    /// sending waits out that request's deadline.
    ///
    /// A new leader also waits until it has committed an entry of its own term: only then has
    /// it applied every committed outcome and intent, so it cannot re-send an event behind a
    /// later one that an earlier leader already delivered, nor miss an open intent.
    public func mayStartDelivery(now: Int64) -> Bool {
        guard role == .leader, log.term(at: commitIndex) == term else { return false }
        // Alone, no other node can ever be elected, so there is no lease to respect.
        if members.count == 1 || faults.injects(.deliverWithoutLeaseCheck) { return true }
        return leaseRemainingMilliseconds(now: now) >= timing.deliveryMarginMilliseconds
    }

    /// When this node took office, on its own monotonic clock; nil unless it leads. The relay's
    /// per-key upstream fence counts its hold from here.
    public var officeStartMilliseconds: Int64? { role == .leader ? leaderSince : nil }

    // MARK: inputs

    /// Time passes: heartbeats, election timeouts, the leader's quorum check.
    public mutating func tick(now: Int64) -> Ready {
        self.now = now
        switch role {
        case .leader:
            if now - lastQuorumContact >= timing.minimumElectionTimeoutMilliseconds && members.count > 1 {
                // No majority has answered for a whole election timeout: a partition. Step down
                // so clients go elsewhere; the lease expired long ago.
                becomeFollower(term: term, leader: nil, now: now)
            } else if now >= nextHeartbeat {
                startRound(now: now)
                for peer in peers {
                    if (appendsInFlight[peer] ?? 0) > 0, now - (appendProgressAt[peer] ?? now) >= timing.minimumElectionTimeoutMilliseconds
                    {
                        // No answer for an election timeout: what was in flight is lost.
                        appendsInFlight[peer] = 0
                        nextIndex[peer] = (matchIndex[peer] ?? 0) + 1
                    }
                    if (matchIndex[peer] ?? 0) < log.lastIndex { replicate(to: peer) }
                }
            }
        case .follower, .preCandidate, .candidate:
            if now >= electionDeadline && mayVote { startPreVote(now: now) }
        }
        return takeReady()
    }

    /// Appends commands to the log. Only the leader accepts; the indexes are where each command
    /// will be applied, so the shell can match results to clients.
    public mutating func propose(_ commands: [Command], now: Int64) -> (indexes: [LogIndex], ready: Ready)? {
        guard role == .leader else { return nil }
        self.now = now
        var indexes: [LogIndex] = []
        for command in commands {
            let entry = Entry(term: term, index: log.lastIndex + 1, command: command)
            log.append(entry)
            ready.entries.append(entry)
            indexes.append(entry.index)
        }
        for peer in peers { replicate(to: peer) }
        return (indexes, takeReady())
    }

    /// Hands leadership to the most up-to-date peer (thesis §3.10), for a graceful shutdown. The
    /// shell must have no delivery in flight: this node gives up its lease at once, so the new
    /// leader may deliver as soon as it is elected. While no peer has the whole log, `handedOver`
    /// is false and the `Ready` carries appends to catch them up (call again); once one has, the
    /// `Ready` carries `timeoutNow` to it and this node is a follower.
    public mutating func transferLeadership(now: Int64) -> (handedOver: Bool, ready: Ready) {
        guard role == .leader, members.count > 1 else { return (false, takeReady()) }
        self.now = now
        let caughtUp = peers.filter { (matchIndex[$0] ?? 0) == log.lastIndex && durableIndex == log.lastIndex }
        guard let target = caughtUp.max(by: { (lastContact[$0] ?? .min) < (lastContact[$1] ?? .min) }) else {
            for peer in peers where (matchIndex[peer] ?? 0) < log.lastIndex { replicate(to: peer) }
            return (false, takeReady())
        }
        send(to: target, term: term, .timeoutNow)
        becomeFollower(term: term, leader: nil, now: now)
        // Not "in lease" of anyone: the transfer's vote request must find this node willing.
        lastLeaderContact = nil
        return (true, takeReady())
    }

    /// How many committed entries this node has still to apply, as far as it knows: for a
    /// follower, behind the commit index its leader last sent.
    public var applyLag: LogIndex {
        let known = role == .leader ? commitIndex : max(leaderCommitIndex, commitIndex)
        return known - lastApplied
    }

    /// The shell made everything up to `index` durable.
    public mutating func persisted(through index: LogIndex, now: Int64) -> Ready {
        self.now = now
        durableIndex = max(durableIndex, min(index, log.lastIndex))
        if role == .leader { advanceCommit() }
        return takeReady()
    }

    public mutating func receive(_ message: Message<Machine>, now: Int64) -> Ready {
        precondition(message.to == id, "message for \(message.to) delivered to \(id)")
        self.now = now
        handle(message, now: now)
        return takeReady()
    }

    // MARK: message handling

    /// Every message goes first through the term rule, then to the handler of the role it is
    /// meant for: vote requests to any node, vote answers to (pre-)candidates, the leader's
    /// messages to followers, and followers' answers to the leader.
    private mutating func handle(_ message: Message<Machine>, now: Int64) {
        guard adoptNewerTerm(of: message, now: now) else { return }
        switch message.body {
        case .preVoteRequest, .voteRequest: answerVoteRequest(message, now: now)
        case .preVoteResponse, .voteResponse: countVote(message, now: now)
        case .append, .installSnapshot, .heartbeat, .timeoutNow: followLeader(message, now: now)
        case .appendResponse, .snapshotResponse, .heartbeatResponse: trackFollower(message, now: now)
        }
    }

    /// A message of a newer term moves this node into it (as a follower), except the ones that
    /// must not: pre-votes, and a vote request while this node still hears its leader. False
    /// when the message is to be ignored entirely.
    private mutating func adoptNewerTerm(of message: Message<Machine>, now: Int64) -> Bool {
        if message.term > term {
            switch message.body {
            case .preVoteRequest:
                break  // a pre-vote changes no term
            case .preVoteResponse(granted: true):
                break  // carries the term we proposed, not a newer one
            case .voteRequest(_, _, let transfer):
                // Heard from a leader within the minimum election timeout: ignore entirely, not
                // even adopting the term. This is what makes the lease safe, and keeps a node
                // rejoining from a partition from deposing a healthy leader. A transfer is the
                // exception: the leader gave its lease up before asking for it.
                if inLeaseOfLeader(now: now) && !transfer { return false }
                becomeFollower(term: message.term, leader: nil, now: now)
            case .append, .installSnapshot, .heartbeat:
                becomeFollower(term: message.term, leader: message.from, now: now)
            default:
                becomeFollower(term: message.term, leader: nil, now: now)
            }
        }
        return true
    }

    /// Any role: a (pre-)candidate asks for this node's vote.
    private mutating func answerVoteRequest(_ message: Message<Machine>, now: Int64) {
        switch message.body {
        case .preVoteRequest(let lastIndex, let lastTerm):
            let granted =
                message.term > term && mayVote && !inLeaseOfLeader(now: now)
                && isUpToDate(lastIndex: lastIndex, lastTerm: lastTerm)
            // Granting puts this node's own campaign off, as a real vote does. Otherwise a
            // follower whose timer runs out while the pre-candidate's vote request is on its way
            // (it waits for a term to be made durable) campaigns too, and the two split the vote:
            // after a frozen leader, a split cost a second election timeout in one of ten runs.
            if granted { resetElectionTimer(now: now) }
            send(to: message.from, term: granted ? message.term : term, .preVoteResponse(granted: granted))
        case .voteRequest(let lastIndex, let lastTerm, _):
            guard message.term == term else {
                send(to: message.from, term: term, .voteResponse(granted: false))
                return
            }
            let granted =
                mayVote && role == .follower && (hardState.votedFor == nil || hardState.votedFor == message.from)
                && isUpToDate(lastIndex: lastIndex, lastTerm: lastTerm)
            if granted {
                hardState.votedFor = message.from
                ready.hardState = hardState
                resetElectionTimer(now: now)
            }
            send(to: message.from, term: term, .voteResponse(granted: granted))
        default:
            preconditionFailure("\(message.body) is not for answerVoteRequest")
        }
    }

    /// A (pre-)candidate counts the answers to its requests.
    private mutating func countVote(_ message: Message<Machine>, now: Int64) {
        switch message.body {
        case .preVoteResponse(let granted):
            guard role == .preCandidate, message.term == term + 1, granted else { return }
            votes.insert(message.from)
            if votes.count >= majority { startElection(now: now) }
        case .voteResponse(let granted):
            guard role == .candidate, message.term == term, granted else { return }
            votes.insert(message.from)
            if votes.count >= majority { becomeLeader(now: now) }
        default:
            preconditionFailure("\(message.body) is not for countVote")
        }
    }

    /// A follower (or a node about to become one) takes what its leader sends.
    private mutating func followLeader(_ message: Message<Machine>, now: Int64) {
        switch message.body {
        case .append(let prevIndex, let prevTerm, let entries, let leaderCommit, let round):
            guard message.term == term else {
                send(to: message.from, term: term, .appendResponse(success: false, matchIndex: 0, round: round))
                return
            }
            acceptLeader(message.from, now: now)
            leaderCommitIndex = max(leaderCommitIndex, leaderCommit)
            handleAppend(
                from: message.from, prevIndex: prevIndex, prevTerm: prevTerm, entries: entries, leaderCommit: leaderCommit, round: round)
        case .installSnapshot(let snapshot, let round):
            guard message.term == term else {
                send(to: message.from, term: term, .snapshotResponse(matchIndex: 0, round: round))
                return
            }
            acceptLeader(message.from, now: now)
            matchedInTerm = max(matchedInTerm, snapshot.index)
            if snapshot.index > commitIndex {
                log.compact(through: snapshot.index, term: snapshot.term)
                machine = snapshot.machine
                snapshotForPeers = nil
                commitIndex = snapshot.index
                lastApplied = snapshot.index
                ready.snapshot = snapshot
                ready.truncateAfter = nil
                ready.entries = []
                durableIndex = min(durableIndex, log.lastIndex)
            }
            checkCaughtUp()
            send(to: message.from, term: term, .snapshotResponse(matchIndex: max(snapshot.index, commitIndex), round: round))
        case .heartbeat(let leaderCommit, let round):
            guard message.term == term else {
                send(to: message.from, term: term, .heartbeatResponse(lastIndex: log.lastIndex, round: round))
                return
            }
            acceptLeader(message.from, now: now)
            leaderCommitIndex = max(leaderCommitIndex, leaderCommit)
            if catchUpTarget == nil && !mayVote { catchUpTarget = leaderCommit }
            let known = min(leaderCommit, matchedInTerm)
            if known > commitIndex {
                commitIndex = known
                applyCommitted()
            }
            checkCaughtUp()
            send(to: message.from, term: term, .heartbeatResponse(lastIndex: log.lastIndex, round: round))
        case .timeoutNow:
            guard message.term == term, role == .follower, mayVote else { return }
            startElection(now: now, transfer: true)
        default:
            preconditionFailure("\(message.body) is not for followLeader")
        }
    }

    /// The leader learns what a follower holds.
    private mutating func trackFollower(_ message: Message<Machine>, now: Int64) {
        switch message.body {
        case .appendResponse(let success, let match, let round):
            guard role == .leader, message.term == term else { return }
            recordContact(from: message.from, round: round, now: now)
            appendProgressAt[message.from] = now
            if success {
                appendsInFlight[message.from] = max(0, (appendsInFlight[message.from] ?? 0) - 1)
                raiseMatch(of: message.from, to: match)
                advanceCommit()
            } else {
                // Whatever else is in flight to it follows the rejected one and fails too.
                appendsInFlight[message.from] = 0
                nextIndex[message.from] = max(1, min(nextIndex[message.from] ?? 1, match + 1))
            }
            replicate(to: message.from)
        case .snapshotResponse(let match, let round):
            guard role == .leader, message.term == term else { return }
            recordContact(from: message.from, round: round, now: now)
            appendProgressAt[message.from] = now
            appendsInFlight[message.from] = 0
            raiseMatch(of: message.from, to: match)
            advanceCommit()
            replicate(to: message.from)
        case .heartbeatResponse(let lastIndex, let round):
            guard role == .leader, message.term == term else { return }
            recordContact(from: message.from, round: round, now: now)
            if lastIndex < (matchIndex[message.from] ?? 0) {
                // It acknowledged more than it now holds: its disk was replaced. Start it over
                // from what it has (an older hint reordered behind a newer answer only costs a
                // resend).
                matchIndex[message.from] = lastIndex
                nextIndex[message.from] = lastIndex + 1
                appendsInFlight[message.from] = 0
            } else if (appendsInFlight[message.from] ?? 0) == 0, let next = nextIndex[message.from], next > lastIndex + 1 {
                // Nothing is in flight to it, yet it lacks entries it was sent: they were lost.
                // (A duplicated answer counts one append off twice, so the count can reach zero
                // while an append is still unanswered, and the resend on silence never fires;
                // seed 9818 left a restarted follower behind for good that way.) Send again
                // from what it holds; a resend of what is still on its way is harmless.
                nextIndex[message.from] = lastIndex + 1
            }
            if (matchIndex[message.from] ?? 0) < log.lastIndex { replicate(to: message.from) }
        default:
            preconditionFailure("\(message.body) is not for trackFollower")
        }
    }

    private mutating func handleAppend(
        from leader: NodeID, prevIndex: LogIndex, prevTerm: Term, entries: [Entry<Command>], leaderCommit: LogIndex, round: UInt64
    ) {
        if catchUpTarget == nil && !mayVote { catchUpTarget = leaderCommit }
        // Entries at or below our snapshot are committed and already applied: skip them.
        if prevIndex < log.snapshotIndex {
            let skip = entries.filter { $0.index > log.snapshotIndex }
            guard let first = skip.first else {
                matchedInTerm = max(matchedInTerm, log.snapshotIndex)
                send(to: leader, term: term, .appendResponse(success: true, matchIndex: log.snapshotIndex, round: round))
                return
            }
            return handleAppend(
                from: leader, prevIndex: first.index - 1, prevTerm: log.snapshotTerm, entries: skip, leaderCommit: leaderCommit,
                round: round)
        }
        guard log.term(at: prevIndex) == prevTerm else {
            let hint = min(log.lastIndex, prevIndex - 1)
            send(to: leader, term: term, .appendResponse(success: false, matchIndex: hint, round: round))
            return
        }
        for entry in entries {
            if let existing = log.term(at: entry.index) {
                if existing == entry.term { continue }
                precondition(entry.index > commitIndex, "a leader tried to overwrite committed entry \(entry.index)")
                log.truncate(after: entry.index - 1)
                ready.truncateAfter = min(ready.truncateAfter ?? .max, entry.index - 1)
                ready.entries.removeAll { $0.index >= entry.index }
                durableIndex = min(durableIndex, entry.index - 1)
            }
            log.append(entry)
            ready.entries.append(entry)
        }
        let lastNew = prevIndex + LogIndex(entries.count)
        matchedInTerm = max(matchedInTerm, lastNew)
        if leaderCommit > commitIndex {
            commitIndex = min(leaderCommit, lastNew)
            applyCommitted()
        }
        checkCaughtUp()
        send(to: leader, term: term, .appendResponse(success: true, matchIndex: lastNew, round: round))
    }

    // MARK: roles

    private mutating func startPreVote(now: Int64) {
        role = .preCandidate
        leaderID = nil
        votes = [id]
        resetElectionTimer(now: now)
        if votes.count >= majority { return startElection(now: now) }
        for peer in peers {
            send(to: peer, term: term + 1, .preVoteRequest(lastLogIndex: log.lastIndex, lastLogTerm: log.lastTerm))
        }
    }

    private mutating func startElection(now: Int64, transfer: Bool = false) {
        role = .candidate
        enterTerm(term + 1, votedFor: id)
        votes = [id]
        resetElectionTimer(now: now)
        if votes.count >= majority { return becomeLeader(now: now) }
        for peer in peers {
            send(to: peer, term: term, .voteRequest(lastLogIndex: log.lastIndex, lastLogTerm: log.lastTerm, transfer: transfer))
        }
    }

    private mutating func becomeLeader(now: Int64) {
        role = .leader
        leaderID = id
        leaderSince = now
        leaseExpiry = nil
        roundSentAt = [:]
        ackedRound = [:]
        round = 0
        lastQuorumContact = now
        for peer in peers {
            nextIndex[peer] = log.lastIndex + 1
            matchIndex[peer] = 0
            appendsInFlight[peer] = 0
            appendProgressAt[peer] = nil
            matchAdvancedAt[peer] = now
        }
        // A no-op in the new term lets the leader commit (and so learn) everything before it.
        let noop = Entry<Command>(term: term, index: log.lastIndex + 1, command: nil)
        log.append(noop)
        ready.entries.append(noop)
        startRound(now: now)
        for peer in peers { replicate(to: peer) }
    }

    /// The only way the term changes. What matched an older term's leader says nothing about
    /// the new term's, so `matchedInTerm` starts over: a heartbeat of a leader this node's own
    /// election lost to must not commit what it had matched before (seed 17400 applied an entry
    /// of term 2 that term 3's leader had replaced).
    private mutating func enterTerm(_ newTerm: Term, votedFor: NodeID?) {
        precondition(newTerm > term, "term \(term) would go to \(newTerm)")
        hardState = HardState(term: newTerm, votedFor: votedFor)
        ready.hardState = hardState
        matchedInTerm = 0
    }

    private mutating func becomeFollower(term newTerm: Term, leader: NodeID?, now: Int64) {
        snapshotForPeers = nil
        if newTerm > term { enterTerm(newTerm, votedFor: nil) }
        if role == .leader || role == .candidate || role == .preCandidate { resetElectionTimer(now: now) }
        role = .follower
        leaderID = leader
        leaseExpiry = nil
    }

    private mutating func acceptLeader(_ leader: NodeID, now: Int64) {
        precondition(!(role == .leader && leader != id), "two leaders in term \(term): \(id) and \(leader)")
        if role != .follower { becomeFollower(term: term, leader: leader, now: now) }
        leaderID = leader
        lastLeaderContact = now
        resetElectionTimer(now: now)
    }

    /// True while this node must not help elect anyone else: it leads, or it has heard from a
    /// leader within the minimum election timeout.
    private func inLeaseOfLeader(now: Int64) -> Bool {
        if role == .leader { return true }
        guard leaderID != nil, let lastLeaderContact else { return false }
        return now - lastLeaderContact < timing.minimumElectionTimeoutMilliseconds
    }

    /// The election restriction (Raft §5.4.1), for votes and pre-votes alike.
    private func isUpToDate(lastIndex: LogIndex, lastTerm: Term) -> Bool {
        if faults.injects(.skipElectionRestriction) { return true }
        return lastTerm > log.lastTerm || (lastTerm == log.lastTerm && lastIndex >= log.lastIndex)
    }

    /// A node back on an empty disk votes again once it has applied what its leader had
    /// committed, and that commit point holds an entry of the leader's own term. A leader just
    /// in office may not yet know how far an earlier term committed (its commit index moves
    /// only with an entry of its own term): catching up to that stale point let an empty-disk
    /// node vote again while it lacked a committed entry, and a second disk loss then lost the
    /// entry (simulator seed 5358).
    private mutating func checkCaughtUp() {
        if !mayVote, let target = catchUpTarget, commitIndex >= target, log.term(at: commitIndex) == term { mayVote = true }
    }

    // MARK: leader work

    /// A new heartbeat round: the lease is renewed by the answers to it.
    private mutating func startRound(now: Int64) {
        round += 1
        roundSentAt[round] = now
        nextHeartbeat = now + timing.heartbeatIntervalMilliseconds
        updateLease(now: now)
        for peer in peers { send(to: peer, term: term, .heartbeat(leaderCommit: commitIndex, round: round)) }
    }

    /// Sends `peer` its next entries (or the snapshot), if it has any to receive (or `evenIfEmpty`:
    /// an empty append tells it the commit index in order with the entries) and its window has
    /// room. A snapshot fills the window: it is resent only when lost.
    private mutating func replicate(to peer: NodeID, evenIfEmpty: Bool = false) {
        let inFlight = appendsInFlight[peer] ?? 0
        guard inFlight < Self.maxAppendsInFlight else { return }
        let next = nextIndex[peer] ?? log.lastIndex + 1
        let sendsSnapshot = next <= log.snapshotIndex
        guard sendsSnapshot ? inFlight == 0 : (evenIfEmpty || next <= log.lastIndex) else { return }
        if inFlight == 0 { appendProgressAt[peer] = now }
        appendsInFlight[peer] = sendsSnapshot ? Self.maxAppendsInFlight : inFlight + 1
        sendAppend(to: peer)
    }

    /// Sends `peer` an append from its `nextIndex`, or the snapshot if that is compacted away.
    private mutating func sendAppend(to peer: NodeID) {
        let next = nextIndex[peer] ?? log.lastIndex + 1
        if next <= log.snapshotIndex {
            send(to: peer, term: term, .installSnapshot(snapshotToSend(), round: round))
            return
        }
        let prevIndex = next - 1
        guard let prevTerm = log.term(at: prevIndex) else {
            preconditionFailure("leader has no term for index \(prevIndex)")
        }
        var entries = log.entries(from: next, max: Self.maxEntriesPerMessage)
        var bytes = 0
        for (offset, entry) in entries.enumerated() {
            bytes += entry.command.map(Machine.replicationBytes(of:)) ?? 0
            if bytes > Self.maxAppendBytes && offset > 0 {
                entries.removeLast(entries.count - offset)
                break
            }
        }
        send(
            to: peer, term: term,
            .append(prevLogIndex: prevIndex, prevLogTerm: prevTerm, entries: entries, leaderCommit: commitIndex, round: round))
        nextIndex[peer] = next + LogIndex(entries.count)
    }

    private mutating func raiseMatch(of peer: NodeID, to match: LogIndex) {
        if match > (matchIndex[peer] ?? 0) {
            matchIndex[peer] = match
            matchAdvancedAt[peer] = now
        }
        nextIndex[peer] = max(nextIndex[peer] ?? 1, match + 1)
    }

    private mutating func recordContact(from peer: NodeID, round: UInt64, now: Int64) {
        lastContact[peer] = now
        ackedRound[peer] = max(ackedRound[peer] ?? 0, round)
        updateLease(now: now)
    }

    /// The lease runs from when the newest round that a majority (this node included) has
    /// answered was *sent*.
    private mutating func updateLease(now: Int64) {
        let answered = ([round] + peers.map { ackedRound[$0] ?? 0 }).sorted(by: >)
        let quorumRound = answered[majority - 1]
        guard quorumRound > 0, let sentAt = roundSentAt[quorumRound] else { return }
        lastQuorumContact = max(lastQuorumContact, sentAt)
        let duration =
            faults.injects(.leaseIgnoresDrift) ? timing.minimumElectionTimeoutMilliseconds : timing.leaseDurationMilliseconds
        leaseExpiry = max(leaseExpiry ?? 0, sentAt + duration)
        roundSentAt = roundSentAt.filter { $0.key >= quorumRound }
    }

    private mutating func advanceCommit() {
        let candidate: LogIndex
        if faults.injects(.commitBeforeMajority) {
            candidate = log.lastIndex
        } else {
            let matches = ([durableIndex] + peers.map { matchIndex[$0] ?? 0 }).sorted(by: >)
            candidate = matches[majority - 1]
        }
        // Only an entry of the current term is committed by counting replicas (Raft §5.4.2).
        guard candidate > commitIndex, log.term(at: candidate) == term else { return }
        commitIndex = candidate
        applyCommitted()
        // Followers learn the new commit index with the next append; send it now (a full window
        // will carry it with its next append, or the next heartbeat will).
        for peer in peers where (matchIndex[peer] ?? 0) >= commitIndex { replicate(to: peer, evenIfEmpty: true) }
    }

    private mutating func applyCommitted() {
        while lastApplied < commitIndex {
            lastApplied += 1
            let entry = log.entry(at: lastApplied)
            let result = entry.command.map { machine.apply($0) }
            ready.applied.append(Applied(index: entry.index, term: entry.term, command: entry.command, result: result))
        }
        // A leader still sending a peer in contact what it needs (its snapshot, or entries the log
        // holds) keeps both while the log stays within bounds: a newer snapshot would restart a
        // transfer that may take minutes, or send a second one to a follower catching up through
        // the log, and under steady load a follower would never catch up.
        let catchingUp =
            role == .leader
            && peers.contains { peer in
                (nextIndex[peer] ?? .max) <= lastApplied
                    && lastContact[peer].map { now - $0 < timing.minimumElectionTimeoutMilliseconds } ?? false
            }
        let limit = catchingUp ? Self.snapshotHoldFactor * snapshotThresholdEntries : snapshotThresholdEntries
        let limitBytes = catchingUp ? 4 * Self.maxLogBytes : Self.maxLogBytes
        if log.entries.count > limit || log.entryBytes > limitBytes, let term = log.term(at: lastApplied) {
            log.compact(through: lastApplied, term: term)
            ready.compactedThrough = lastApplied
        }
        // A snapshot kept for peers shares the machine's tables, so each table's next change
        // copies it: it goes as soon as no peer needs one.
        if snapshotForPeers != nil && !peers.contains(where: { (nextIndex[$0] ?? .max) <= log.snapshotIndex }) {
            snapshotForPeers = nil
        }
    }

    /// The snapshot a peer behind the log's start is sent: the one made for an earlier send,
    /// while the log still continues it (so a transfer that was cut resumes rather than starts
    /// over with a new one), or a new one of the applied state.
    private mutating func snapshotToSend() -> Snapshot<Machine> {
        if let kept = snapshotForPeers, kept.index >= log.snapshotIndex { return kept }
        guard let appliedTerm = log.term(at: lastApplied) else { preconditionFailure("no term for applied index \(lastApplied)") }
        let snapshot = Snapshot(index: lastApplied, term: appliedTerm, machine: machine)
        snapshotForPeers = snapshot
        return snapshot
    }

    // MARK: plumbing

    private mutating func resetElectionTimer(now: Int64) {
        let minimum = timing.minimumElectionTimeoutMilliseconds
        electionDeadline = now + minimum + Int64(random.next() % UInt64(minimum))
    }

    private mutating func send(to peer: NodeID, term: Term, _ body: Message<Machine>.Body) {
        ready.messages.append(Message(from: id, to: peer, term: term, body: body))
    }

    private mutating func takeReady() -> Ready {
        defer { ready = Ready() }
        return ready
    }
}

/// Deliberate protocol bugs, for proving that the simulator catches them. They can be switched
/// on only in debug builds (where the tests run); a release build ignores them.
public struct ProtocolFaults: OptionSet, Sendable, Hashable {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }

    /// False in release builds, where no fault can be switched on.
    public static var areAvailable: Bool {
        #if DEBUG
            true
        #else
            false
        #endif
    }

    /// Whether `fault` is switched on. Always false in a release build, whatever was asked.
    public func injects(_ fault: ProtocolFaults) -> Bool {
        #if DEBUG
            return !fault.isEmpty && isSuperset(of: fault)
        #else
            return false
        #endif
    }

    public static let none: ProtocolFaults = []
    public static let commitBeforeMajority = ProtocolFaults(rawValue: 1 << 0)
    public static let skipElectionRestriction = ProtocolFaults(rawValue: 1 << 1)
    public static let leaseIgnoresDrift = ProtocolFaults(rawValue: 1 << 2)
    public static let deliverWithoutLeaseCheck = ProtocolFaults(rawValue: 1 << 3)
    public static let forgetVoteOnRestart = ProtocolFaults(rawValue: 1 << 4)
    /// A new leader sends for a key at once, although an older term's intent for it is open.
    public static let ignoreOpenIntents = ProtocolFaults(rawValue: 1 << 5)
}
