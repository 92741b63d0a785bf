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
        var scheduler = DeliveryScheduler(maxInFlight: 2)
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
        var scheduler = DeliveryScheduler(maxInFlight: 10)
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
        var scheduler = DeliveryScheduler(maxInFlight: 10)
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
        var scheduler = DeliveryScheduler(maxInFlight: 10)
        scheduler.keyChanged(a)
        #expect(scheduler.start(nowMilliseconds: 0) { _ in nil }.isEmpty)
        #expect(scheduler.inFlightCount == 0)
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
