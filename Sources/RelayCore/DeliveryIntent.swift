/// A leader's committed promise that it may be sending an event upstream: written to the log
/// *before* the request leaves, closed by the attempt's recorded outcome.
///
/// It is what lets the upstream timeout outlast the leader lease. A new leader sees, for every
/// key, whether an older term may still have a request on its way to PagerDuty; only such keys
/// wait until that request's hard deadline has passed (`ClusterTiming.intentHoldMilliseconds`),
/// every other key is delivered at once. See docs/protocol.md, "Fencing the upstream".
public struct DeliveryIntent: Sendable, Equatable {
    public let key: OrderingKey
    public let eventNumber: UInt64
    /// The term of the leader that opened it (a `ClusterCore.Term`).
    public let term: UInt64
    /// Which attempt of the event this is, counting from 1: for people reading the log.
    public let attempt: Int

    public init(key: OrderingKey, eventNumber: UInt64, term: UInt64, attempt: Int) {
        precondition(attempt > 0, "attempts count from 1")
        self.key = key
        self.eventNumber = eventNumber
        self.term = term
        self.attempt = attempt
    }
}
