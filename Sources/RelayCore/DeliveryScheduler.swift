import DequeModule
import HeapModule

/// Decides which events the leader sends now. It is leader-local and not replicated: backoff
/// timers and in-flight requests belong to the node that made them, and a new leader starts
/// every key afresh. It keeps the per-key rule, one event in flight per (routing_key, dedup_key),
/// and bounds the total in flight.
public struct DeliveryScheduler: Sendable {
    public let maxInFlight: Int
    private var runnable: Deque<OrderingKey> = []
    private var runnableSet: Set<OrderingKey> = []
    private var inFlight: [OrderingKey: UInt64] = [:]
    private var waiting: Heap<Wait> = []
    private var waitingUntil: [OrderingKey: Int64] = [:]
    /// After a 429, PagerDuty's limit is per routing key, so every key of that routing key waits.
    private var pausedUntil: [String: Int64] = [:]

    private struct Wait: Comparable, Sendable {
        let atMilliseconds: Int64
        let key: OrderingKey
        static func < (lhs: Wait, rhs: Wait) -> Bool { (lhs.atMilliseconds, lhs.key) < (rhs.atMilliseconds, rhs.key) }
    }

    public init(maxInFlight: Int) {
        precondition(maxInFlight > 0, "maxInFlight must be positive")
        self.maxInFlight = maxInFlight
    }

    public var inFlightCount: Int { inFlight.count }

    /// When the earliest waiting key becomes runnable, on the monotonic clock.
    public var nextWakeMilliseconds: Int64? { waiting.min?.atMilliseconds }

    /// The first pending event of `key` may have changed (a new event, or the head left).
    public mutating func keyChanged(_ key: OrderingKey) {
        guard inFlight[key] == nil, waitingUntil[key] == nil, !runnableSet.contains(key) else { return }
        runnable.append(key)
        runnableSet.insert(key)
    }

    /// Picks events to start now, at most up to the in-flight limit. `head` gives the event that
    /// is first for a key in the replicated state; `notBefore` the time before which a key must
    /// not start (an older term's request may still be out for it), if any.
    public mutating func start(
        nowMilliseconds now: Int64, head: (OrderingKey) -> QueuedEvent?, notBefore: (OrderingKey) -> Int64? = { _ in nil }
    ) -> [QueuedEvent] {
        while let wait = waiting.min, wait.atMilliseconds <= now {
            waiting.removeMin()
            guard waitingUntil[wait.key] == wait.atMilliseconds else { continue }
            waitingUntil[wait.key] = nil
            keyChanged(wait.key)
        }
        var started: [QueuedEvent] = []
        while inFlight.count < maxInFlight, let key = runnable.popFirst() {
            runnableSet.remove(key)
            guard let event = head(key) else { continue }
            if let holdUntil = notBefore(key), holdUntil > now {
                wait(key, until: holdUntil)
                continue
            }
            if let pause = pausedUntil[key.routingKey] {
                if pause > now {
                    wait(key, until: pause)
                    continue
                }
                pausedUntil[key.routingKey] = nil
            }
            inFlight[key] = event.number
            started.append(event)
        }
        return started
    }

    /// An attempt ended. `retryAtMilliseconds` is set when the same event must be tried again
    /// later; otherwise the key's next event (if any) may go at once.
    public mutating func finished(_ key: OrderingKey, retryAtMilliseconds: Int64?, pauseRoutingKeyUntilMilliseconds: Int64? = nil) {
        precondition(inFlight.removeValue(forKey: key) != nil, "finished \(key), which was not in flight")
        if let pause = pauseRoutingKeyUntilMilliseconds {
            pausedUntil[key.routingKey] = max(pausedUntil[key.routingKey] ?? pause, pause)
        }
        if let retryAtMilliseconds {
            wait(key, until: retryAtMilliseconds)
        } else {
            keyChanged(key)
        }
    }

    private mutating func wait(_ key: OrderingKey, until deadline: Int64) {
        waitingUntil[key] = deadline
        waiting.insert(Wait(atMilliseconds: deadline, key: key))
    }
}
