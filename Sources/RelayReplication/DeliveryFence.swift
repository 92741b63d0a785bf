import ClusterCore
import RelayCore

/// The per-key upstream fencing rule of one leader term (docs/protocol.md, "Fencing the
/// upstream"): for one (routing_key, dedup_key), no request of an older term reaches PagerDuty
/// after a newer term has started one.
///
/// A leader commits a `DeliveryIntent` before each send and sends only while its lease holds, so
/// an older term's request can be out only for a key whose last intent is from that term, and
/// only until `upstreamTimeout` after a moment before this leader took office. Such a key waits
/// `ClusterTiming.intentHoldMilliseconds` from the start of this term; any other key goes at once.
public struct DeliveryFence: Sendable, Equatable {
    public let term: Term
    /// When this node became leader of `term`, on its own monotonic clock.
    public let officeStartMilliseconds: Int64
    public let holdMilliseconds: Int64
    let ignoresOpenIntents: Bool

    init(term: Term, officeStartMilliseconds: Int64, timing: ClusterTiming, faults: ProtocolFaults) {
        self.term = term
        self.officeStartMilliseconds = officeStartMilliseconds
        self.holdMilliseconds = timing.intentHoldMilliseconds
        self.ignoresOpenIntents = faults.injects(.ignoreOpenIntents)
    }

    /// The earliest time (on this node's clock) the key whose open intent is `intent` may start
    /// a request in this term; nil for at once.
    public func earliestStartMilliseconds(openIntent intent: DeliveryIntent?) -> Int64? {
        guard let intent, intent.term < term, !ignoresOpenIntents else { return nil }
        return officeStartMilliseconds + holdMilliseconds
    }

    /// The intent to commit before sending `event` in this term. A single node needs one too:
    /// the request of its previous incarnation, killed mid-send, may still be on its way (a slow
    /// proxy holds it) when the restarted node takes office in a new term (the simulator's
    /// single-node seeds showed a trigger from before a crash landing after the new term's resolve).
    public func intent(for event: QueuedEvent) -> DeliveryIntent {
        DeliveryIntent(key: event.key, eventNumber: event.number, term: term, attempt: event.attempts + 1)
    }
}

extension RaftNode {
    /// The per-key fencing rule of this leader's term; nil unless this node leads.
    public var deliveryFence: DeliveryFence? {
        guard let officeStartMilliseconds else { return nil }
        return DeliveryFence(
            term: term, officeStartMilliseconds: officeStartMilliseconds, timing: timing, faults: faults)
    }
}
