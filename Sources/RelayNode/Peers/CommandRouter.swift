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
            let leader: NodeID?
            do throws(EngineError) {
                return try await engine.submit(command)
            } catch .notLeader(let known) {
                leader = known
            }
            if let leader, leader != selfID, let transport {
                do throws(EngineError) {
                    return try await transport.forward(command, to: leader)
                } catch .notLeader, .peerFailed {
                    // Leadership moved, or the leader died: look again below.
                }
            }
            guard environment.monotonicMilliseconds() < deadline else { throw .noLeader }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }
}
