import Foundation
import Testing

@testable import LoadTestKit

#if canImport(FoundationXML)
    import FoundationXML
#endif

@Suite struct ReportTests {
    func event(_ sequence: Int32, dueMilliseconds: Int64, latencyMilliseconds: Int64, status: Int16 = 202) -> SentEvent {
        SentEvent(
            incident: 0, sequence: sequence, action: 0, status: status, dueNanoseconds: dueMilliseconds * 1_000_000,
            answeredNanoseconds: (dueMilliseconds + latencyMilliseconds) * 1_000_000)
    }

    @Test func percentilesComeFromTheHistogramWithinItsPrecision() {
        let summary = LatencySummary(nanoseconds: (1...1_000).map { Int64($0) * 1_000_000 })
        #expect(summary.count == 1_000)
        #expect(abs(summary.p50 - 500) <= 0.5)
        #expect(abs(summary.p99 - 990) <= 1)
        #expect(abs(summary.max - 1_000) <= 1)
        #expect(LatencySummary(nanoseconds: []).p99 == 0)
    }

    @Test func theTimelineCountsEachSecondAndItsLatency() {
        let sent = [
            event(1, dueMilliseconds: 100, latencyMilliseconds: 10), event(2, dueMilliseconds: 200, latencyMilliseconds: 30),
            event(3, dueMilliseconds: 1_500, latencyMilliseconds: 5, status: 503),
        ]
        let upstream = [
            UpstreamRecord(incident: 0, sequence: 1, action: "trigger", status: 202, term: 1, receivedNanoseconds: 2_100_000_000)
        ]
        let timeline = Timeline(sent: sent, upstream: upstream, lengthSeconds: 3)
        #expect(timeline.seconds.map(\.accepted) == [2, 0, 0])
        #expect(timeline.seconds.map(\.failed) == [0, 1, 0])
        #expect(timeline.seconds.map(\.delivered) == [0, 0, 1])
        #expect(abs(timeline.seconds[0].p99Milliseconds - 30) < 0.5)
    }

    @Test func aGapBetweenAcceptedAnswersIsAnUnavailabilityWindow() {
        let sent = [
            event(1, dueMilliseconds: 0, latencyMilliseconds: 10), event(2, dueMilliseconds: 20, latencyMilliseconds: 10),
            event(3, dueMilliseconds: 40, latencyMilliseconds: 2_000), event(4, dueMilliseconds: 60, latencyMilliseconds: 5, status: 0),
        ]
        let windows = UnavailabilityWindow.find(in: sent, minimumMilliseconds: 250)
        #expect(windows.count == 1)
        #expect(abs(windows[0].milliseconds - 2_010) < 1)
    }

    @Test func theChartIsWellFormedSVGWithEverySeriesAndTheChaosMarked() throws {
        let sent = (0..<300).map { event(Int32($0), dueMilliseconds: Int64($0) * 10, latencyMilliseconds: 3) }
        let workload = Workload(
            pacing: .openLoop(eventsPerSecond: 100), connections: 1, dedupKeys: 1, routingKeys: 1,
            mix: ActionMix(trigger: 1, acknowledge: 0, resolve: 0), payloadBytes: 600...600, durationSeconds: 3, runID: "chart")
        let phase = PhaseReport(
            name: "chaos", target: "three nodes <behind> HAProxy — open loop", workload: workload, upstreamFaults: [], loadSeconds: 3,
            sent: 300, accepted: 300, rejectedByStatus: [:], acceptedPerMinute: 6_000, deliveredDuringLoad: nil, deliveredPerMinute: nil,
            drainSeconds: nil, upstreamStatuses: nil, ingestLatency: LatencySummary(nanoseconds: sent.map(\.latencyNanoseconds)),
            endToEndLatency: nil, audit: nil, processes: [],
            chaos: [
                ChaosOutcome(
                    event: "kill9:leader@1.0+1.0", node: 2, role: "leader", term: 1, atSeconds: 1, endedAtSeconds: 2,
                    firstAcceptedAfterMilliseconds: 900, firstDeliveryInNewerTermMilliseconds: nil)
            ],
            unavailability: [UnavailabilityWindow(fromSeconds: 1, toSeconds: 1.9)],
            timeline: Timeline(sent: sent, upstream: [], lengthSeconds: 3))
        let svg = Chart(phase: phase).svg
        #expect(XMLParser(data: Data(svg.utf8)).parse(), "the SVG parses as XML")
        #expect(svg.contains("kill9:leader node 2"))
        #expect(svg.contains("&lt;behind&gt;"), "text is escaped")
        #expect(svg.components(separatedBy: "<polyline").count - 1 == 5, "accepted, delivered, failed, p50, p99")
        #expect(svg.contains("#f4c7c3"), "the outage is shaded")
    }

    @Test func theProcessSamplerReadsCPUAndPeakMemoryOfARealProcess() async {
        let pid = getpid()
        let sampler = ProcessSampler(processes: { [("me", pid)] })
        // Busy for 300 ms of wall time: at least some of it is this process's CPU time.
        let until = ContinuousClock.now + .milliseconds(300)
        var spin = 0.0
        while ContinuousClock.now < until { spin += sin(spin + 1) }
        let usage = sampler.stop()
        #expect(usage.count == 1)
        #expect(usage[0].name == "me")
        #expect(usage[0].peakRSSMegabytes > 1)
        #expect(usage[0].cpuSeconds > 0.02, "spun to \(spin)")
    }
}
