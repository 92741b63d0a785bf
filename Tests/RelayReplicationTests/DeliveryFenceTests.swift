import ClusterCore
import RelayCore
import Testing

@testable import RelayReplication

/// The per-key fencing rule a new leader follows (docs/protocol.md, "Fencing the upstream").
@Suite struct DeliveryFenceTests {
    let timing = ClusterTiming(maxClockDrift: 0.05, upstreamTimeoutMilliseconds: 10_000, deliveryMarginMilliseconds: 50)
    let key = OrderingKey(routingKey: "r", dedupKey: "k")

    func fence(term: Term = 4, faults: ProtocolFaults = .none) -> DeliveryFence {
        DeliveryFence(term: term, officeStartMilliseconds: 1_000, timing: timing, faults: faults)
    }

    @Test func theHoldOutlastsTheOldLeadersDeadlineOnAFasterClock() {
        // 10 s on a clock up to 5 % slower, plus the margin.
        #expect(timing.intentHoldMilliseconds == 10_550)
    }

    @Test func onlyAKeyAnOlderTermMayStillBeSendingWaits() {
        let older = DeliveryIntent(key: key, eventNumber: 1, term: 3, attempt: 2)
        let own = DeliveryIntent(key: key, eventNumber: 1, term: 4, attempt: 3)
        #expect(fence().earliestStartMilliseconds(openIntent: older) == Int64(1_000 + 10_550))
        #expect(fence().earliestStartMilliseconds(openIntent: own) == nil)
        #expect(fence().earliestStartMilliseconds(openIntent: nil) == nil)
    }

    @Test func everySendHasAnIntentOfItsTerm() {
        let event = QueuedEvent(
            number: 1, kind: .alert, action: .trigger, key: key, body: [], fingerprint: [], receivedAtMilliseconds: 0)
        #expect(fence().intent(for: event) == DeliveryIntent(key: key, eventNumber: 1, term: 4, attempt: 1))
    }

    #if DEBUG
        @Test func thePlantedBugIgnoresOlderIntents() {
            let older = DeliveryIntent(key: key, eventNumber: 1, term: 3, attempt: 1)
            #expect(fence(faults: .ignoreOpenIntents).earliestStartMilliseconds(openIntent: older) == nil)
        }
    #endif
}
