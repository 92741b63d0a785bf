import ClusterCore
import EngineCore
import RelayCore
import RelayReplication

/// What arrives over the peer streams, handed to the engine: Raft messages, and client commands
/// a follower forwards to this node as its leader.
struct PeerInbound: Sendable {
    let engine: RelayEngine
    let selfID: NodeID
    let limits: RelayStateMachine.Limits

    /// A batch of Raft messages from `peer`, which may speak only for itself.
    func receive(_ payload: ArraySlice<UInt8>, from peer: NodeID) async throws(PeerStreamRefusal) {
        let messages: [Message<RelayStateMachine>]
        do {
            messages = try MessageCodec.decode(Array(payload), limits: limits)
        } catch {
            throw PeerStreamRefusal(.malformed, "an unreadable message batch from node \(peer): \(error)")
        }
        guard messages.allSatisfy({ $0.from == peer && $0.to == selfID }) else {
            throw PeerStreamRefusal(.malformed, "node \(peer) sent messages in another node's name, or for another node")
        }
        await engine.receive(messages)
    }

    /// The outcomes of forwarded commands, in their order. Submitted together, they join one
    /// proposal on this node.
    func outcomes(of forwarded: [PeerWire.Forwarded], receivedAtMilliseconds: Int64) async -> [Result<CommandResult, EngineError>] {
        // Frozen since the follower sent them: it has given up on them and may have sent the
        // client's later events since (CommandRouter).
        let stale = !(await engine.admitsRequest(receivedAtMilliseconds: receivedAtMilliseconds))
        return await withTaskGroup(of: (Int, Result<CommandResult, EngineError>).self) { group in
            for (index, command) in forwarded.enumerated() {
                // The follower's hold runs on here from when the batch arrived.
                let holdDeadline = command.holdRemainingMilliseconds.map { receivedAtMilliseconds + $0 }
                group.addTask {
                    guard !stale else { return (index, .failure(.staleRequest)) }
                    return (index, await engine.outcome(of: command.command, holdDeadlineMilliseconds: holdDeadline))
                }
            }
            var outcomes = [Result<CommandResult, EngineError>?](repeating: nil, count: forwarded.count)
            for await (index, outcome) in group { outcomes[index] = outcome }
            return outcomes.map { $0! }
        }
    }
}
