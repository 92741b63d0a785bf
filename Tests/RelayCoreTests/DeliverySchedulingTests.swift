import RelayTestSupport
import Testing

@testable import RelayCore

@Suite struct DeliverySchedulerTests {
    func event(_ number: UInt64, _ key: OrderingKey) -> QueuedEvent {
        QueuedEvent(number: number, kind: .alert, action: .trigger, key: key, body: [], fingerprint: [], receivedAtMilliseconds: 0)
    }

    let a = OrderingKey(routingKey: TestSupport.routingKey(1), dedupKey: "a")
    let b = OrderingKey(routingKey: TestSupport.routingKey(1), dedupKey: "b")
    let c = OrderingKey(routingKey: TestSupport.routingKey(2), dedupKey: "c")

    @Test func oneEventPerKeyIsInFlightAndTheTotalIsBounded() {
        var scheduler = DeliveryScheduler(maxInFlight: 2, budget: .unlimited)
        var heads = [a: event(1, a), b: event(2, b), c: event(3, c)]
        for key in [a, b, c] { scheduler.keyChanged(key) }
        #expect(scheduler.start(nowMilliseconds: 0) { heads[$0] }.map(\.number) == [1, 2])
        scheduler.keyChanged(a)  // a new event behind an in-flight one changes nothing
        #expect(scheduler.start(nowMilliseconds: 0) { heads[$0] }.isEmpty)
        heads[a] = event(4, a)
        scheduler.finished(a, retryAtMilliseconds: nil)
        #expect(scheduler.start(nowMilliseconds: 0) { heads[$0] }.map(\.number) == [3])
        #expect(scheduler.inFlightCount == 2)
    }

    @Test func aFailedKeyWaitsForItsBackoffWhileOthersGo() {
        var scheduler = DeliveryScheduler(maxInFlight: 10, budget: .unlimited)
        let heads = [a: event(1, a), c: event(3, c)]
        scheduler.keyChanged(a)
        #expect(scheduler.start(nowMilliseconds: 0) { heads[$0] }.map(\.number) == [1])
        scheduler.finished(a, retryAtMilliseconds: 500)
        #expect(scheduler.nextWakeMilliseconds == 500)
        scheduler.keyChanged(c)
        #expect(scheduler.start(nowMilliseconds: 499) { heads[$0] }.map(\.number) == [3])
        #expect(scheduler.start(nowMilliseconds: 500) { heads[$0] }.map(\.number) == [1])
    }

    @Test func a429PausesEveryKeyOfThatRoutingKey() {
        var scheduler = DeliveryScheduler(maxInFlight: 10, budget: .unlimited)
        let heads = [a: event(1, a), b: event(2, b), c: event(3, c)]
        scheduler.keyChanged(a)
        _ = scheduler.start(nowMilliseconds: 0) { heads[$0] }
        scheduler.finished(a, retryAtMilliseconds: 1_000, pauseRoutingKeyUntilMilliseconds: 1_000)
        scheduler.keyChanged(b)
        scheduler.keyChanged(c)
        #expect(scheduler.start(nowMilliseconds: 10) { heads[$0] }.map(\.number) == [3])
        #expect(scheduler.start(nowMilliseconds: 1_000) { heads[$0] }.map(\.number).sorted() == [1, 2])
    }

    @Test func aKeyWithNothingPendingIsDropped() {
        var scheduler = DeliveryScheduler(maxInFlight: 10, budget: .unlimited)
        scheduler.keyChanged(a)
        #expect(scheduler.start(nowMilliseconds: 0) { _ in nil }.isEmpty)
        #expect(scheduler.inFlightCount == 0)
    }
}

@Suite struct DeliveryBudgetTests {
    func trigger(_ number: UInt64, _ key: OrderingKey, severity: String) -> QueuedEvent {
        let body =
            #"{"routing_key":"\#(key.routingKey)","event_action":"trigger","dedup_key":"\#(key.dedupKey)","payload":{"summary":"s","source":"h","severity":"\#(severity)"}}"#
        return QueuedEvent(
            number: number, kind: .alert, action: .trigger, key: key, body: Array(body.utf8), fingerprint: [], receivedAtMilliseconds: 0)
    }

    let routingKey = TestSupport.routingKey(1)
    func key(_ name: String, routingKey: String? = nil) -> OrderingKey {
        OrderingKey(routingKey: routingKey ?? self.routingKey, dedupKey: name)
    }

    @Test func slotsAreAMinuteDividedByTheBudgetSoNoWindowHoldsMore() {
        var budget = DeliveryBudget(policy: .init(defaultEventsPerMinute: 120))
        var starts: [Int64] = []
        var now: Int64 = 0
        while starts.count < 300 {
            now = budget.nextSlotMilliseconds(for: routingKey, now: now + 7)
            budget.spend(routingKey, now: now)
            starts.append(now)
        }
        // PagerDuty counts over a window looking back 60 s from each request.
        for (index, start) in starts.enumerated() {
            #expect(starts[index...].prefix { $0 < start + 60_000 }.count <= 120)
        }
        #expect(budget.nextSlotMilliseconds(for: TestSupport.routingKey(2), now: now) == now, "another routing key is untouched")
    }

    @Test func a429ShrinksOnlyThatRoutingKeysBudgetForAWhile() {
        var budget = DeliveryBudget(policy: .init(defaultEventsPerMinute: 120))
        budget.spend(routingKey, now: 0)
        budget.throttled(routingKey, now: 100)
        #expect(budget.slotMilliseconds(for: routingKey, now: 100) == 1_000)
        budget.throttled(routingKey, now: 200)
        budget.throttled(routingKey, now: 300)
        budget.throttled(routingKey, now: 400)
        #expect(budget.slotMilliseconds(for: routingKey, now: 400) == 500 * DeliveryBudget.Policy.maxShrinkFactor)
        #expect(budget.nextSlotMilliseconds(for: routingKey, now: 400) == 400 + 4_000)
        #expect(budget.slotMilliseconds(for: TestSupport.routingKey(2), now: 400) == 500)
        let recovered = 400 + DeliveryBudget.Policy.throttleRecoveryMilliseconds
        #expect(budget.slotMilliseconds(for: routingKey, now: recovered) == 500)
    }

    @Test func anUrgentEventTakesTheNextSlotAheadOfAFlood() {
        var scheduler = DeliveryScheduler(maxInFlight: 64, budget: .init(defaultEventsPerMinute: 120))
        var heads: [OrderingKey: QueuedEvent] = [:]
        for index in 0..<50 {
            let key = key("info-\(index)")
            heads[key] = trigger(UInt64(index), key, severity: "info")
            scheduler.keyChanged(key)
        }
        #expect(scheduler.start(nowMilliseconds: 0) { heads[$0] }.map(\.number) == [0], "one request per slot")
        #expect(scheduler.parkedCount == 49)
        let critical = key("critical")
        heads[critical] = trigger(99, critical, severity: "critical")
        scheduler.keyChanged(critical)
        #expect(scheduler.start(nowMilliseconds: 100) { heads[$0] }.isEmpty)
        #expect(scheduler.nextWakeMilliseconds == 500)
        #expect(scheduler.start(nowMilliseconds: 500) { heads[$0] }.map(\.number) == [99], "the critical event goes in the next slot")
        #expect(scheduler.start(nowMilliseconds: 1_000) { heads[$0] }.map(\.number) == [1], "then the flood, oldest first")
    }

    @Test func resolvesAreUrgentAndChangeEventsRoutine() {
        let resolve = QueuedEvent(
            number: 1, kind: .alert, action: .resolve, key: key("r"), body: [], fingerprint: [], receivedAtMilliseconds: 0)
        let change = QueuedEvent(
            number: 2, kind: .change, action: .change, key: key("c"), body: [], fingerprint: [], receivedAtMilliseconds: 0)
        #expect(DeliveryLane(of: resolve) == .urgent)
        #expect(DeliveryLane(of: change) == .routine)
        #expect(DeliveryLane(of: trigger(3, key("e"), severity: "error")) == .urgent)
        #expect(DeliveryLane(of: trigger(4, key("w"), severity: "warning")) == .routine)
    }

    @Test func aKeyGoesStraightOnOnlyWithAFreeSlotNoParkedKeyWants() {
        var scheduler = DeliveryScheduler(maxInFlight: 8, budget: .init(defaultEventsPerMinute: 120))
        let a = key("a")
        let b = key("b")
        let heads = [a: trigger(1, a, severity: "info"), b: trigger(2, b, severity: "critical")]
        scheduler.keyChanged(a)
        #expect(scheduler.start(nowMilliseconds: 0) { heads[$0] }.map(\.number) == [1])
        let whileSpent = scheduler.mayContinue(a, nowMilliseconds: 100)
        #expect(!whileSpent, "the slot is spent")
        let atTheNextSlot = scheduler.mayContinue(a, nowMilliseconds: 500)
        #expect(atTheNextSlot)
        scheduler.keyChanged(b)
        #expect(scheduler.start(nowMilliseconds: 600) { heads[$0] }.isEmpty)
        let withAKeyParked = scheduler.mayContinue(a, nowMilliseconds: 1_000)
        #expect(!withAKeyParked, "a parked key is waiting for this slot")
        #expect(scheduler.start(nowMilliseconds: 1_000) { heads[$0] }.map(\.number) == [2])
    }
}

@Suite struct RetryPolicyTests {
    let policy = RetryPolicy(initialBackoffMilliseconds: 100, maxBackoffMilliseconds: 1_000, maxAttempts: 5)

    @Test func backoffDoublesUpToTheCapWithFullJitter() {
        let almostOne = 0.999_999
        #expect(
            (1...6).map { policy.backoffMilliseconds(afterAttempts: $0, jitter: almostOne, retryAfterMilliseconds: nil) } == [
                99, 199, 399, 799, 999, 999,
            ])
        #expect(policy.backoffMilliseconds(afterAttempts: 3, jitter: 0, retryAfterMilliseconds: nil) == 0)
        #expect(policy.backoffMilliseconds(afterAttempts: 1_000, jitter: 0.5, retryAfterMilliseconds: nil) == 500)
    }

    @Test func retryAfterIsAFloorButNotBelievedWithoutLimit() {
        #expect(policy.backoffMilliseconds(afterAttempts: 1, jitter: 0, retryAfterMilliseconds: 3_000) == 3_000)
        #expect(
            policy.backoffMilliseconds(afterAttempts: 1, jitter: 0, retryAfterMilliseconds: 86_400_000)
                == RetryPolicy.maxRetryAfterMilliseconds)
    }

    @Test(
        arguments: [
            (202, nil, UpstreamVerdict.delivered), (200, nil, .delivered), (400, nil, .rejected), (413, nil, .rejected),
            (429, "7", .retry(retryAfterMilliseconds: 7_000)), (429, "Wed, 21 Oct 2015 07:28:00 GMT", .retry(retryAfterMilliseconds: nil)),
            (500, nil, .retry(retryAfterMilliseconds: nil)), (503, " 2 ", .retry(retryAfterMilliseconds: 2_000)),
            (404, nil, .retry(retryAfterMilliseconds: nil)),
        ] as [(Int, String?, UpstreamVerdict)])
    func upstreamAnswersAreClassifiedAsPagerDutyDocuments(_ status: Int, _ retryAfter: String?, _ verdict: UpstreamVerdict) {
        #expect(UpstreamVerdict.classify(statusCode: status, retryAfter: retryAfter) == verdict)
    }

    @Test func noAnswerIsRetriedUntilTheAttemptsRunOut() {
        let verdict = UpstreamVerdict.classify(statusCode: nil, retryAfter: nil)
        #expect(verdict.outcome(attemptsBefore: 3, policy: policy) == .retry)
        #expect(verdict.outcome(attemptsBefore: 4, policy: policy) == .deadLettered)
        #expect(UpstreamVerdict.rejected.outcome(attemptsBefore: 0, policy: policy) == .deadLettered)
    }

    @Test func unsafeRetrySettingsAreRefused() {
        #expect(throws: ConfigurationError.self) { try RetryPolicy(initialBackoffMilliseconds: 0).validate() }
        #expect(throws: ConfigurationError.self) { try RetryPolicy(initialBackoffMilliseconds: 10, maxBackoffMilliseconds: 5).validate() }
        #expect(throws: ConfigurationError.self) { try RetryPolicy(maxAttempts: 0).validate() }
    }
}
