import ClusterCore
import EngineCore
import NIOConcurrencyHelpers
import RelayCore

/// Gets a client command to the leader from any node: applied here when this node leads,
/// forwarded over the peer link when another does, and retried while no leader is known, for
/// at most `leader_wait_milliseconds`.
///
/// A forward is abandoned the moment this node learns that its leader was replaced (a newer
/// term, or the leader went silent and an election began): a frozen leader would otherwise hold
/// the request, and the client's connection, until it woke. The command then goes to the new
/// leader; if it had reached the old one too, the new leader sees a byte-identical duplicate.
struct CommandRouter: Sendable {
    let engine: RelayEngine
    let transport: PeerTransport?
    let selfID: NodeID
    let leaderWaitMilliseconds: Int64
    /// Nil for a single node (see `RelayConfiguration.requestHoldMilliseconds`).
    let requestHoldMilliseconds: Int64?
    let environment: NodeEnvironment
    /// How often a forward in flight looks for a change of leader.
    static let leadershipPollMilliseconds = 10

    /// `receivedAtMilliseconds`: when the client's request arrived (monotonic), for client
    /// commands. Such a request is refused as stale once it has waited `requestHoldMilliseconds`
    /// without being proposed (the load balancer has retried it elsewhere by then), or when this
    /// node was frozen since it arrived; a forward carries what is left of the hold, so that the
    /// leader refuses it too when it comes late.
    func submit(_ command: RelayCommand, receivedAtMilliseconds: Int64? = nil) async throws(EngineError) -> CommandResult {
        let deadline = environment.monotonicMilliseconds() + leaderWaitMilliseconds
        let holdDeadline = receivedAtMilliseconds.flatMap { received in requestHoldMilliseconds.map { received + $0 } }
        while true {
            if let receivedAtMilliseconds {
                guard environment.monotonicMilliseconds() < holdDeadline ?? .max,
                    await engine.admitsRequest(receivedAtMilliseconds: receivedAtMilliseconds)
                else { throw .staleRequest }
            }
            switch await engine.outcome(of: command, holdDeadlineMilliseconds: holdDeadline) {
            case .success(let result):
                return result
            case .failure(.notLeader(let leader)):
                if let leader, leader != selfID, let transport {
                    switch await forward(command, holdDeadlineMilliseconds: holdDeadline, to: leader, over: transport) {
                    case .success(let result): return result
                    // Leadership moved, or the leader died: look again below.
                    case .failure(.notLeader), .failure(.peerFailed): break
                    case .failure(let error): throw error
                    }
                }
            case .failure(let error):
                throw error
            }
            let now = environment.monotonicMilliseconds()
            if let holdDeadline, now >= holdDeadline { throw .staleRequest }
            guard now < deadline else { throw .noLeader }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    /// The forward's outcome, or `notLeader` as soon as the leader it went to is no longer the
    /// one this node knows. The abandoned forward runs on to its own timeout, unawaited.
    private func forward(
        _ command: RelayCommand, holdDeadlineMilliseconds: Int64?, to leader: NodeID, over transport: PeerTransport
    ) async -> Result<
        CommandResult, EngineError
    > {
        let sentUnder = engine.leadership.withLockedValue { $0 }
        guard sentUnder.leader == leader else { return .failure(.notLeader(leader: sentUnder.leader)) }
        let leadership = engine.leadership
        return await withCheckedContinuation { continuation in
            let answered = NIOLockedValueBox(false)
            let answer = { @Sendable (outcome: Result<CommandResult, EngineError>) -> Bool in
                let first = answered.withLockedValue { done in
                    defer { done = true }
                    return !done
                }
                if first { continuation.resume(returning: outcome) }
                return first
            }
            let watcher = Task {
                while !Task.isCancelled {
                    let now = leadership.withLockedValue { $0 }
                    if now != sentUnder {
                        _ = answer(.failure(.notLeader(leader: now.leader)))
                        return
                    }
                    try? await Task.sleep(for: .milliseconds(Self.leadershipPollMilliseconds))
                }
            }
            Task {
                let outcome = await transport.forward(command, holdDeadlineMilliseconds: holdDeadlineMilliseconds, to: leader)
                watcher.cancel()
                _ = answer(outcome)
            }
        }
    }
}
