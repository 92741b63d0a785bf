import ClusterCore

/// Why a command got no result. Each case keeps its meaning across the peer link (`PeerWire`),
/// so a client hears the same reason from a follower as from the leader.
public enum EngineError: Error, Sendable, Equatable {
    /// The store failed a write: the node no longer knows what is on disk and takes nothing more.
    case storeFailed(String)
    /// Only the leader appends; the caller hands the command to `leader` (nil: none known).
    case notLeader(leader: NodeID?)
    /// No leader became known within `leader_wait_milliseconds`.
    case noLeader
    /// The entry did not commit within `commit_timeout_milliseconds`, or leadership changed
    /// before it did: it may or may not be applied later, so the client must retry (dedup makes
    /// the retry harmless).
    case outcomeUnknown(String)
    /// The hop to the leader failed.
    case peerFailed(String)
    /// This node was frozen after the request arrived: its client has likely retried it
    /// elsewhere by now (HAProxy does after 1 s), and the client may have sent the incident's
    /// next events since. Accepting this copy late could put a trigger after its resolve.
    case staleRequest
}
