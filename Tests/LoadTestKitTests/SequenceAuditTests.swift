import Testing

@testable import LoadTestKit

/// The audit is what turns a load test into a correctness check: each rule is shown to catch
/// what it is for, and to let through what the relay may legitimately do.
@Suite struct SequenceAuditTests {
    static let trigger: UInt8 = 0
    static let acknowledge: UInt8 = 1
    static let resolve: UInt8 = 2

    func sent(_ incident: Int32, _ sequence: Int32, _ action: UInt8, status: Int16 = 202) -> SentEvent {
        SentEvent(
            incident: incident, sequence: sequence, action: action, status: status, dueNanoseconds: Int64(sequence) * 1_000,
            answeredNanoseconds: Int64(sequence) * 1_000 + 500)
    }

    func delivered(_ incident: Int32, _ sequence: Int32, at time: Int64, term: UInt64? = 1, status: Int = 202) -> UpstreamRecord {
        UpstreamRecord(incident: incident, sequence: sequence, action: "x", status: status, term: term, receivedNanoseconds: time)
    }

    @Test func everyEventDeliveredInOrderIsClean() {
        let audit = SequenceAudit(
            sent: [sent(1, 1, Self.trigger), sent(1, 2, Self.acknowledge), sent(2, 1, Self.trigger)],
            upstream: [delivered(1, 1, at: 10), delivered(2, 1, at: 11), delivered(1, 2, at: 12)])
        #expect(audit.isClean)
        #expect(audit.acknowledged == 3)
        #expect(audit.deliveredDirectly == 3)
        #expect(audit.lost == 0)
    }

    @Test func anAcknowledgedEventThatNeverArrivesIsLost() {
        let audit = SequenceAudit(
            sent: [sent(1, 1, Self.trigger), sent(1, 2, Self.resolve)], upstream: [delivered(1, 2, at: 10)])
        #expect(audit.lost == 1)
        #expect(!audit.isClean)
        #expect(audit.examples == ["lost 1/1"])
    }

    @Test func aQueuedEventReplacedByTheNextOfTheSameActionIsCoalescedNotLost() {
        // 1, 2 and 3 are triggers: the relay may send only 3 (and 1 as the head of the key).
        let audit = SequenceAudit(
            sent: [sent(1, 1, Self.trigger), sent(1, 2, Self.trigger), sent(1, 3, Self.trigger), sent(1, 4, Self.resolve)],
            upstream: [delivered(1, 1, at: 10), delivered(1, 3, at: 11), delivered(1, 4, at: 12)])
        #expect(audit.coalesced == 1)
        #expect(audit.lost == 0)
        #expect(audit.isClean)
    }

    @Test func aLostFirstEventIsNotCountedAsCoalesced() {
        // 1 is the head of its key's queue and the relay never replaces a head: 2 delivered
        // does not cover it, although it has the same action.
        let audit = SequenceAudit(
            sent: [sent(1, 1, Self.trigger), sent(1, 2, Self.trigger)], upstream: [delivered(1, 2, at: 10)])
        #expect(audit.lost == 1)
        #expect(audit.coalesced == 0)
        #expect(audit.examples == ["lost 1/1"])
        #expect(!audit.isClean)
    }

    @Test func coalescingDoesNotCoverAnEventOfAnotherAction() {
        // A trigger cannot be replaced by a resolve: dropping it is a loss.
        let audit = SequenceAudit(
            sent: [sent(1, 1, Self.acknowledge), sent(1, 2, Self.trigger), sent(1, 3, Self.resolve)],
            upstream: [delivered(1, 1, at: 10), delivered(1, 3, at: 11)])
        #expect(audit.lost == 1)
        #expect(audit.coalesced == 0)
    }

    @Test func aChainOfCoalescedEventsBreaksAtALostOne() {
        // 3 was lost (acknowledged, never sent); 2 cannot count as coalesced into it.
        let audit = SequenceAudit(
            sent: [sent(1, 1, Self.trigger), sent(1, 2, Self.trigger), sent(1, 3, Self.trigger), sent(1, 4, Self.resolve)],
            upstream: [delivered(1, 1, at: 10), delivered(1, 4, at: 12)])
        #expect(audit.lost == 2)
    }

    @Test func anEventDeliveredAfterALaterOneOfItsIncidentIsAnOrderViolation() {
        let audit = SequenceAudit(
            sent: [sent(1, 1, Self.trigger), sent(1, 2, Self.resolve)], upstream: [delivered(1, 2, at: 10), delivered(1, 1, at: 11)])
        #expect(audit.orderViolations == 1)
        #expect(!audit.isClean)
    }

    @Test func aRepeatOfAnEarlierEventAfterALaterOneIsAnOrderViolation() {
        // A trigger sent again after its resolve reopens the incident.
        let audit = SequenceAudit(
            sent: [sent(1, 1, Self.trigger), sent(1, 2, Self.resolve)],
            upstream: [delivered(1, 1, at: 10), delivered(1, 2, at: 11), delivered(1, 1, at: 12)])
        #expect(audit.orderViolations == 1)
    }

    @Test func unacknowledgedEventsDoNotCountForOrder() {
        // The client gave up on 1 (timed out) and sent 2; the relay may have taken 1 late.
        let audit = SequenceAudit(
            sent: [sent(1, 1, Self.trigger, status: 0), sent(1, 2, Self.resolve)],
            upstream: [delivered(1, 2, at: 10), delivered(1, 1, at: 11)])
        #expect(audit.orderViolations == 0)
        #expect(audit.deliveredUnacknowledged == 1)
        #expect(audit.isClean)
    }

    @Test func duplicatesAreAllowedOncePerLeaderChangeAndNoMore() {
        let twice = SequenceAudit(
            sent: [sent(1, 1, Self.trigger)], upstream: [delivered(1, 1, at: 10, term: 1), delivered(1, 1, at: 11, term: 2)])
        #expect(twice.duplicatedEvents == 1)
        #expect(twice.duplicatesBeyondBound == 0)
        #expect(twice.deliveringTerms == [1, 2])

        let thrice = SequenceAudit(
            sent: [sent(1, 1, Self.trigger)],
            upstream: [delivered(1, 1, at: 10, term: 1), delivered(1, 1, at: 11, term: 2), delivered(1, 1, at: 12, term: 2)])
        #expect(thrice.duplicatesBeyondBound == 1)
        #expect(!thrice.isClean)
    }

    @Test func aDeliveryFromAnOlderTermAfterANewerOneForTheSameIncidentIsStale() {
        let audit = SequenceAudit(
            sent: [sent(1, 1, Self.trigger), sent(1, 2, Self.trigger)],
            upstream: [delivered(1, 2, at: 10, term: 2), delivered(1, 1, at: 11, term: 1)])
        #expect(audit.staleTermDeliveries == 1)
        #expect(!audit.isClean)
        // Fencing is per key: an old leader's request for another incident may land later.
        let otherIncident = SequenceAudit(
            sent: [sent(1, 1, Self.trigger), sent(2, 1, Self.trigger)],
            upstream: [delivered(1, 1, at: 10, term: 2), delivered(2, 1, at: 11, term: 1)])
        #expect(otherIncident.staleTermDeliveries == 0)
    }

    @Test func failedUpstreamAttemptsAreNotDeliveries() {
        let audit = SequenceAudit(
            sent: [sent(1, 1, Self.trigger)], upstream: [delivered(1, 1, at: 10, status: 500), delivered(1, 1, at: 20)])
        #expect(audit.duplicatedEvents == 0)
        #expect(audit.isClean)
    }
}
