import ClusterCore
import RelayCore

/// Gets a client command to the leader from any node: applied here when this node leads,
/// forwarded over the peer link when another does, and retried while no leader is known, for
/// at most `leader_wait_milliseconds`.
struct CommandRouter: Sendable {
    let engine: RelayEngine
    let transport: PeerTransport?
    let selfID: NodeID
    let leaderWaitMilliseconds: Int64
    let environment: NodeEnvironment

    func submit(_ command: RelayCommand) async throws(EngineError) -> CommandResult {
        let deadline = environment.monotonicMilliseconds() + leaderWaitMilliseconds
        while true {
            switch await engine.outcome(of: command) {
            case .success(let result):
                return result
            case .failure(.notLeader(let leader)):
                if let leader, leader != selfID, let transport {
                    switch await transport.forward(command, to: leader) {
                    case .success(let result): return result
                    // Leadership moved, or the leader died: look again below.
                    case .failure(.notLeader), .failure(.peerFailed): break
                    case .failure(let error): throw error
                    }
                }
            case .failure(let error):
                throw error
            }
            guard environment.monotonicMilliseconds() < deadline else { throw .noLeader }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }
}
