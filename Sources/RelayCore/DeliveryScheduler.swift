import DequeModule
import HeapModule

/// Decides which events the leader sends now. It is leader-local and not replicated: backoff
/// timers, budgets and in-flight requests belong to the node that made them, and a new leader
/// starts every key afresh. It keeps the per-key rule, one event in flight per (routing_key,
/// dedup_key), bounds the total in flight, and spends each routing key's `DeliveryBudget`: a key
/// whose routing key has no free slot is parked in its `DeliveryLane`, and each slot goes to the
/// oldest parked key of the most urgent lane.
public struct DeliveryScheduler: Sendable {
    public let maxInFlight: Int
    private var runnable: Deque<OrderingKey> = []
    private var runnableSet: Set<OrderingKey> = []
    private var inFlight: Set<OrderingKey> = []
    private var waiting: Heap<Wait> = []
    private var waitingUntil: [OrderingKey: Int64] = [:]
    /// After a 429, PagerDuty's limit is per routing key, so every key of that routing key waits.
    private var pausedUntil: [String: Int64] = [:]
    private var budget: DeliveryBudget
    /// Keys waiting for a slot of their routing key, by lane, oldest first.
    private var parked: [String: [DeliveryLane: Deque<OrderingKey>]] = [:]
    private var parkedSet: Set<OrderingKey> = []
    /// When each routing key with parked keys is woken for its next slot.
    private var slotWaits: Heap<SlotWait> = []
    private var slotWaitAt: [String: Int64] = [:]

    private struct Wait: Comparable, Sendable {
        let atMilliseconds: Int64
        let key: OrderingKey
        static func < (lhs: Wait, rhs: Wait) -> Bool { (lhs.atMilliseconds, lhs.key) < (rhs.atMilliseconds, rhs.key) }
    }

    private struct SlotWait: Comparable, Sendable {
        let atMilliseconds: Int64
        let routingKey: String
        static func < (lhs: SlotWait, rhs: SlotWait) -> Bool { (lhs.atMilliseconds, lhs.routingKey) < (rhs.atMilliseconds, rhs.routingKey) }
    }

    public init(maxInFlight: Int, budget: DeliveryBudget.Policy) {
        precondition(maxInFlight > 0, "maxInFlight must be positive")
        self.maxInFlight = maxInFlight
        self.budget = DeliveryBudget(policy: budget)
    }

    public var inFlightCount: Int { inFlight.count }

    /// Keys waiting for a slot of their routing key's budget.
    public var parkedCount: Int { parkedSet.count }

    /// Keys of `routingKey` waiting for a slot of its budget.
    public func parkedCount(for routingKey: String) -> Int { parked[routingKey]?.values.reduce(0) { $0 + $1.count } ?? 0 }

    /// `routingKey`'s slot now (`DeliveryBudget.slotMilliseconds`); nil when it has no budget.
    public func slotMilliseconds(for routingKey: String, now: Int64) -> Int64? { budget.slotMilliseconds(for: routingKey, now: now) }

    /// When the earliest waiting key or budget slot comes due, on the monotonic clock (for tests:
    /// the engine looks again at every tick).
    var nextWakeMilliseconds: Int64? {
        [waiting.min?.atMilliseconds, slotWaits.min?.atMilliseconds].compactMap { $0 }.min()
    }

    /// The first pending event of `key` may have changed (a new event, or the head left).
    public mutating func keyChanged(_ key: OrderingKey) {
        guard !inFlight.contains(key), waitingUntil[key] == nil, !runnableSet.contains(key), !parkedSet.contains(key) else { return }
        runnable.append(key)
        runnableSet.insert(key)
    }

    /// Whether `key`, in flight, may go straight on to its next event now (the next event rides
    /// behind the outcome). It may only if its routing key has a free slot that no parked key is
    /// waiting for; the slot is then spent. A 429's pause of the routing key is not consulted:
    /// under a budget the 429 has already pushed the next slot out (`throttled`).
    public mutating func mayContinue(_ key: OrderingKey, nowMilliseconds now: Int64) -> Bool {
        precondition(inFlight.contains(key), "\(key) continued, but it was not in flight")
        guard parked[key.routingKey] == nil,
            budget.nextSlotMilliseconds(for: key.routingKey, now: now) <= now
        else { return false }
        budget.spend(key.routingKey, now: now)
        return true
    }

    /// Whether an event about to be proposed for `key`, which has nothing pending, may have its
    /// first attempt start as soon as it is committed (its intent rides in its entry): only if
    /// the scheduler knows nothing of the key, a slot of the in-flight limit is free beyond the
    /// keys already waiting to start, and its routing key is neither paused nor short of budget
    /// (nor has parked keys, which a free slot goes to first). The key is then in flight, and
    /// the budget's slot spent, until `finished`.
    public mutating func mayStartWithAcceptance(_ key: OrderingKey, nowMilliseconds now: Int64) -> Bool {
        guard inFlight.count + runnable.count < maxInFlight, !inFlight.contains(key), waitingUntil[key] == nil,
            !runnableSet.contains(key), !parkedSet.contains(key), parked[key.routingKey] == nil,
            (pausedUntil[key.routingKey] ?? .min) <= now, budget.nextSlotMilliseconds(for: key.routingKey, now: now) <= now
        else { return false }
        budget.spend(key.routingKey, now: now)
        inFlight.insert(key)
        return true
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
        while inFlight.count < maxInFlight, let key = nextCandidate(now: now) {
            defer { armSlot(key.routingKey, now: now) }
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
            guard budget.nextSlotMilliseconds(for: key.routingKey, now: now) <= now else {
                park(key, in: DeliveryLane(of: event))
                continue
            }
            budget.spend(key.routingKey, now: now)
            inFlight.insert(key)
            started.append(event)
        }
        return started
    }

    /// The next key to consider: one parked key of a routing key whose slot has come (the most
    /// urgent lane's oldest), before any key that has not yet asked for a slot.
    private mutating func nextCandidate(now: Int64) -> OrderingKey? {
        while let wait = slotWaits.min, wait.atMilliseconds <= now {
            slotWaits.removeMin()
            guard slotWaitAt[wait.routingKey] == wait.atMilliseconds else { continue }
            slotWaitAt[wait.routingKey] = nil
            if let key = unpark(wait.routingKey) { return key }
        }
        guard let key = runnable.popFirst() else { return nil }
        runnableSet.remove(key)
        return key
    }

    private mutating func park(_ key: OrderingKey, in lane: DeliveryLane) {
        parked[key.routingKey, default: [:]][lane, default: []].append(key)
        parkedSet.insert(key)
    }

    private mutating func unpark(_ routingKey: String) -> OrderingKey? {
        guard var lanes = parked[routingKey] else { return nil }
        defer { parked[routingKey] = lanes.isEmpty ? nil : lanes }
        for lane in DeliveryLane.allCases {
            guard var keys = lanes[lane], let key = keys.popFirst() else { continue }
            lanes[lane] = keys.isEmpty ? nil : keys
            parkedSet.remove(key)
            return key
        }
        return nil
    }

    /// Makes sure a routing key with parked keys is woken at its next slot.
    private mutating func armSlot(_ routingKey: String, now: Int64) {
        guard parked[routingKey] != nil, slotWaitAt[routingKey] == nil else { return }
        let at = budget.nextSlotMilliseconds(for: routingKey, now: now)
        slotWaitAt[routingKey] = at
        slotWaits.insert(SlotWait(atMilliseconds: at, routingKey: routingKey))
    }

    /// An attempt ended. `retryAtMilliseconds` is set when the same event must be tried again
    /// later; otherwise the key's next event (if any) may go at once.
    public mutating func finished(_ key: OrderingKey, retryAtMilliseconds: Int64?, pauseRoutingKeyUntilMilliseconds: Int64? = nil) {
        precondition(inFlight.remove(key) != nil, "finished \(key), which was not in flight")
        if let pause = pauseRoutingKeyUntilMilliseconds {
            pausedUntil[key.routingKey] = max(pausedUntil[key.routingKey] ?? pause, pause)
        }
        if let retryAtMilliseconds {
            wait(key, until: retryAtMilliseconds)
        } else {
            keyChanged(key)
        }
    }

    /// PagerDuty answered 429 for `routingKey`: its budget shrinks for a while
    /// (`DeliveryBudget.throttled`), from the next slot on.
    public mutating func throttled(_ routingKey: String, nowMilliseconds now: Int64) {
        budget.throttled(routingKey, now: now)
    }

    private mutating func wait(_ key: OrderingKey, until deadline: Int64) {
        waitingUntil[key] = deadline
        waiting.insert(Wait(atMilliseconds: deadline, key: key))
    }
}
