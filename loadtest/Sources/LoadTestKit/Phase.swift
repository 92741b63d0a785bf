import Foundation
import MockPagerDuty

/// Everything measured in one phase of a benchmark run.
public struct PhaseReport: Sendable, Codable {
    public var name: String
    public var target: String
    public var workload: Workload
    public var upstreamFaults: [String]
    public var loadSeconds: Double
    public var sent: Int
    public var accepted: Int
    /// Answers other than 202, by status ("0" for no answer).
    public var rejectedByStatus: [String: Int]
    public var acceptedPerMinute: Double
    /// Deliveries of this phase's events that the upstream accepted while the load ran.
    public var deliveredDuringLoad: Int?
    public var deliveredPerMinute: Double?
    /// From the end of the load until every acknowledged event was accounted for upstream.
    public var drainSeconds: Double?
    /// What the upstream answered, by status, over the whole phase.
    public var upstreamStatuses: [String: Int]?
    public var ingestLatency: LatencySummary
    /// From when an event was due to its first delivery upstream.
    public var endToEndLatency: LatencySummary?
    public var audit: SequenceAudit?
    public var processes: [ProcessSampler.Usage]
    public var chaos: [ChaosOutcome]
    public var unavailability: [UnavailabilityWindow]
    public var timeline: Timeline

    /// Whether nothing acknowledged went missing or out of order.
    public var isCorrect: Bool { audit?.isClean ?? true }
}

/// Runs one phase: the load, the chaos schedule and the process sampler together, then waits for
/// the upstream to drain and audits what arrived.
public struct PhaseRunner: Sendable {
    public var name: String
    public var workload: Workload
    public var chaos: [ChaosEvent] = []
    public var upstreamFaults: [FaultRule] = []
    public var drainTimeoutSeconds: Double = 300

    public init(name: String, workload: Workload) {
        self.name = name
        self.workload = workload
    }

    /// `upstream` is the mock the target delivers to (nil for a target that does not deliver).
    public func run(
        target: any SystemUnderTest, description: String, upstream: MockPagerDuty?, path: String = "/v2/enqueue"
    ) async throws -> PhaseReport {
        let generator = try Generator(url: target.url, path: path, workload: workload)
        // The load test's own process (the generator, and the mock) shares the machine too.
        let ownPID = getpid()
        let sampler = ProcessSampler(processes: { target.processes() + [("pdrelay-loadtest", ownPID)] })
        let sampling = Task { await sampler.run() }
        let start = ContinuousClock.now
        await upstream?.setFaults(upstreamFaults, epoch: start)
        let control = target as? any ChaosControl
        if !chaos.isEmpty, control == nil { throw LoadTestError("chaos needs a cluster the harness started") }
        let chaosTask = control.map { control in
            Task { await ChaosRunner(control: control, events: chaos, seed: workload.seed).run(start: start) }
        }
        let sent = await generator.run(start: start)
        let loadSeconds = (ContinuousClock.now - start).seconds
        let outcomes = await chaosTask?.value ?? []

        var drainSeconds: Double?
        var records: [UpstreamRecord] = []
        var statuses: [String: Int] = [:]
        if let upstream {
            let factory = EventFactory(runID: workload.runID, routingKeys: workload.routingKeys)
            let drained = await Self.drain(
                upstream: upstream, sent: sent, factory: factory, start: start, timeout: .seconds(drainTimeoutSeconds))
            records = drained.records
            statuses = drained.statuses
            drainSeconds = max(0, (drained.finished - start).seconds - loadSeconds)
            await upstream.setFaults([])
        }
        let usage = sampler.stop()
        sampling.cancel()

        let accepted = sent.filter(\.accepted)
        var rejected: [String: Int] = [:]
        for event in sent where !event.accepted { rejected[String(event.status), default: 0] += 1 }
        let loadNanoseconds = Int64(loadSeconds * 1e9)
        let deliveredDuringLoad = records.filter { $0.delivered && $0.receivedNanoseconds <= loadNanoseconds }.count
        let timelineSeconds = Int((loadSeconds + (drainSeconds ?? 0)).rounded(.up))
        // An outage is a gap between 202s far longer than the usual one (at least 250 ms).
        let meanGapMilliseconds = loadSeconds * 1_000 / Double(max(accepted.count, 1))
        return PhaseReport(
            name: name, target: description, workload: workload, upstreamFaults: upstreamFaults.map(\.description),
            loadSeconds: loadSeconds, sent: sent.count, accepted: accepted.count, rejectedByStatus: rejected,
            acceptedPerMinute: Double(accepted.count) / loadSeconds * 60,
            deliveredDuringLoad: upstream == nil ? nil : deliveredDuringLoad,
            deliveredPerMinute: upstream == nil ? nil : Double(deliveredDuringLoad) / loadSeconds * 60, drainSeconds: drainSeconds,
            upstreamStatuses: upstream == nil ? nil : statuses,
            ingestLatency: LatencySummary(nanoseconds: accepted.lazy.map(\.latencyNanoseconds)),
            endToEndLatency: upstream == nil ? nil : Self.endToEnd(sent: accepted, records: records),
            audit: upstream == nil ? nil : SequenceAudit(sent: sent, upstream: records), processes: usage,
            chaos: ChaosRunner.measureRecovery(outcomes, sent: sent, upstream: records),
            unavailability: UnavailabilityWindow.find(in: sent, minimumMilliseconds: max(250, 20 * meanGapMilliseconds)),
            timeline: Timeline(sent: sent, upstream: records, lengthSeconds: timelineSeconds))
    }

    /// Due time to first delivery, for acknowledged events delivered as themselves.
    static func endToEnd(sent accepted: [SentEvent], records: [UpstreamRecord]) -> LatencySummary {
        var first: [SequenceAudit.EventID: Int64] = [:]
        for record in records where record.delivered {
            let id = SequenceAudit.EventID(incident: record.incident, sequence: record.sequence)
            first[id] = min(first[id] ?? .max, record.receivedNanoseconds)
        }
        return LatencySummary(
            nanoseconds: accepted.lazy.compactMap { event in
                first[SequenceAudit.EventID(incident: event.incident, sequence: event.sequence)].map { $0 - event.dueNanoseconds }
            })
    }

    /// Waits until the newest acknowledged event of every incident has been delivered (the
    /// relay delivers a key's events in order, so then every earlier one was delivered or
    /// coalesced), or the timeout passes; reads only new deliveries on each look.
    static func drain(
        upstream: MockPagerDuty, sent: [SentEvent], factory: EventFactory, start: ContinuousClock.Instant, timeout: Duration
    ) async -> (records: [UpstreamRecord], statuses: [String: Int], finished: ContinuousClock.Instant) {
        var newest: [Int32: Int32] = [:]
        for event in sent where event.accepted { newest[event.incident] = max(newest[event.incident] ?? 0, event.sequence) }
        var waiting = Set(newest.map { SequenceAudit.EventID(incident: $0.key, sequence: $0.value) })
        var records: [UpstreamRecord] = []
        var statuses: [String: Int] = [:]
        var seen = 0
        var finished = ContinuousClock.now
        let deadline = ContinuousClock.now + timeout
        var settled = false
        while true {
            let fresh = await upstream.deliveries(since: seen)
            seen += fresh.count
            for delivery in fresh {
                statuses[String(delivery.status), default: 0] += 1
                guard let key = delivery.dedupKey, let incident = factory.incident(dedupKey: key), let sequence = delivery.sequence else {
                    continue
                }
                let record = UpstreamRecord(
                    incident: Int32(incident), sequence: Int32(sequence), action: delivery.action ?? "", status: delivery.status,
                    term: delivery.term.flatMap(UInt64.init), receivedNanoseconds: (delivery.receivedAt - start).nanoseconds)
                records.append(record)
                if record.delivered, waiting.remove(SequenceAudit.EventID(incident: record.incident, sequence: record.sequence)) != nil {
                    finished = max(finished, delivery.receivedAt)
                }
            }
            if settled { return (records, statuses, finished) }
            if waiting.isEmpty || ContinuousClock.now >= deadline {
                // One more look a second later: a late duplicate must not escape the audit.
                settled = true
                try? await Task.sleep(for: .seconds(1))
            } else {
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
    }
}
