/// PagerDuty ingests about 120 events a minute per routing key, counted over a window that looks
/// back 60 s from each request; a request over it gets a 429 and is *not* ingested
/// (shared/reference/events-api.md). The relay spends that budget itself instead of learning it
/// from 429s: requests for one routing key start at least one slot apart, a slot being a minute
/// divided by the budget, so no 60 s window holds more requests than the budget. Evenly spaced
/// slots, rather than a burst allowance, are what bound an urgent event's wait behind a flood to
/// one slot. Retries spend slots too: PagerDuty counts calls, not events.
///
/// Leader-local and not replicated, like the rest of scheduling: a new leader starts every
/// routing key with a free slot, so a failover can add at most one request to a window.
public struct DeliveryBudget: Sendable {
    public struct Policy: Sendable, Equatable {
        /// Requests a minute for a routing key without an entry of its own; nil for no budget
        /// (only for a mock upstream or a load test: PagerDuty itself always has one).
        public var defaultEventsPerMinute: Int?
        public var eventsPerMinuteByRoutingKey: [String: Int]

        /// PagerDuty's published limit per integration key.
        public static let pagerDutyEventsPerMinute = 120
        /// The largest budget one routing key may have: PagerDuty grants at most 10,000 a minute
        /// per key even to AIOps accounts.
        public static let maxEventsPerMinute = 10_000
        /// Each 429 doubles a routing key's slot length, up to this factor.
        public static let maxShrinkFactor: Int64 = 8
        /// A routing key's slots return to full length this long after its last 429: PagerDuty
        /// asks for a back-off of "a few minutes", and its window is 60 s.
        public static let throttleRecoveryMilliseconds: Int64 = 60_000

        public init(defaultEventsPerMinute: Int? = Self.pagerDutyEventsPerMinute, eventsPerMinuteByRoutingKey: [String: Int] = [:]) {
            precondition(
                ([defaultEventsPerMinute].compactMap { $0 } + eventsPerMinuteByRoutingKey.values).allSatisfy {
                    (1...Self.maxEventsPerMinute).contains($0)
                }, "a delivery budget must be within 1...\(Self.maxEventsPerMinute) events per minute")
            self.defaultEventsPerMinute = defaultEventsPerMinute
            self.eventsPerMinuteByRoutingKey = eventsPerMinuteByRoutingKey
        }

        /// No budget anywhere: the simulator and load tests against a mock.
        public static let unlimited = Policy(defaultEventsPerMinute: nil)

        /// The length of one slot for `routingKey` at full budget; nil when it has no budget.
        func slotMilliseconds(for routingKey: String) -> Int64? {
            (eventsPerMinuteByRoutingKey[routingKey] ?? defaultEventsPerMinute).map { (60_000 + Int64($0) - 1) / Int64($0) }
        }
    }

    private struct Account: Sendable {
        /// The earliest start of this routing key's next request.
        var nextSlotAtMilliseconds: Int64
        var shrinkFactor: Int64 = 1
        var shrunkUntilMilliseconds: Int64 = 0
    }

    /// Accounts of routing keys idle at full budget carry nothing and are dropped past this many.
    static let maxIdleAccounts = 10_000

    public let policy: Policy
    private var accounts: [String: Account] = [:]

    public init(policy: Policy) {
        self.policy = policy
    }

    /// When `routingKey` may next start a request; `now` if it may at once.
    public func nextSlotMilliseconds(for routingKey: String, now: Int64) -> Int64 {
        max(now, accounts[routingKey]?.nextSlotAtMilliseconds ?? now)
    }

    /// A request for `routingKey` starts now, in a slot that is free.
    public mutating func spend(_ routingKey: String, now: Int64) {
        precondition(nextSlotMilliseconds(for: routingKey, now: now) <= now, "a request started before its routing key's next slot")
        guard let slot = policy.slotMilliseconds(for: routingKey) else { return }
        var account = accounts[routingKey] ?? Account(nextSlotAtMilliseconds: now)
        if account.shrunkUntilMilliseconds <= now { account.shrinkFactor = 1 }
        account.nextSlotAtMilliseconds = now + slot * account.shrinkFactor
        if accounts[routingKey] == nil && accounts.count >= Self.maxIdleAccounts { dropIdleAccounts(now: now) }
        accounts[routingKey] = account
    }

    /// PagerDuty answered 429 for `routingKey`: its slots grow until it has been quiet a while.
    /// Other routing keys are untouched, as PagerDuty's limit is per key.
    public mutating func throttled(_ routingKey: String, now: Int64) {
        guard let slot = policy.slotMilliseconds(for: routingKey), var account = accounts[routingKey] else { return }
        if account.shrunkUntilMilliseconds <= now { account.shrinkFactor = 1 }
        account.shrinkFactor = min(account.shrinkFactor * 2, Policy.maxShrinkFactor)
        account.shrunkUntilMilliseconds = now + Policy.throttleRecoveryMilliseconds
        account.nextSlotAtMilliseconds = max(account.nextSlotAtMilliseconds, now + slot * account.shrinkFactor)
        accounts[routingKey] = account
    }

    /// The current slot length of `routingKey`, for status pages; nil when it has no budget.
    public func slotMilliseconds(for routingKey: String, now: Int64) -> Int64? {
        guard let slot = policy.slotMilliseconds(for: routingKey) else { return nil }
        guard let account = accounts[routingKey], account.shrunkUntilMilliseconds > now else { return slot }
        return slot * account.shrinkFactor
    }

    private mutating func dropIdleAccounts(now: Int64) {
        accounts = accounts.filter { $0.value.nextSlotAtMilliseconds > now || $0.value.shrunkUntilMilliseconds > now }
    }
}
