import Foundation

/// A whole benchmark run: the machine, the command, every phase, the ratios between phases
/// measured side by side, and the targets checked against them.
public struct BenchReport: Sendable, Codable {
    public struct Machine: Sendable, Codable {
        public var cores: Int
        public var memoryGigabytes: Double
        public var kernel: String

        public static func current() -> Machine {
            let kernel = (try? String(contentsOfFile: "/proc/sys/kernel/osrelease", encoding: .utf8))?
                .trimmingCharacters(in: .whitespacesAndNewlines)
            return Machine(
                cores: ProcessInfo.processInfo.activeProcessorCount,
                memoryGigabytes: (Double(ProcessInfo.processInfo.physicalMemory) / 1_073_741_824 * 10).rounded() / 10,
                kernel: kernel ?? "unknown")
        }
    }

    public struct Ratio: Sendable, Codable {
        public var name: String
        public var value: Double
    }

    public struct TargetCheck: Sendable, Codable {
        public var name: String
        public var measured: Double
        public var goal: String
        public var met: Bool
    }

    public var startedAt: String
    public var command: String
    public var machine: Machine
    public var phases: [PhaseReport]
    public var ratios: [Ratio] = []
    public var targets: [TargetCheck] = []

    public init(startedAt: Date, command: String, machine: Machine, phases: [PhaseReport]) {
        self.startedAt = ISO8601DateFormatter().string(from: startedAt)
        self.command = command
        self.machine = machine
        self.phases = phases
    }

    public func phase(_ name: String) -> PhaseReport? { phases.first { $0.name == name } }

    /// Whether every audited phase came out clean.
    public var isCorrect: Bool { phases.allSatisfy(\.isCorrect) }

    /// Ratios between phases of this run and against the published figures of the tools pdrelay
    /// replaces, and the issue's targets for the three-node cluster.
    public mutating func compare() {
        let cluster = phase("cluster")?.acceptedPerMinute
        func add(_ name: String, _ numerator: Double?, _ denominator: Double?) {
            guard let numerator, let denominator, denominator > 0 else { return }
            ratios.append(Ratio(name: name, value: numerator / denominator))
        }
        add("cluster / HTTP ceiling (direct)", cluster, phase("ceiling")?.acceptedPerMinute)
        add("cluster / HTTP ceiling (through HAProxy)", cluster, phase("ceiling-haproxy")?.acceptedPerMinute)
        add("cluster / single node", cluster, phase("single-node")?.acceptedPerMinute)
        add("single node / HTTP ceiling (direct)", phase("single-node")?.acceptedPerMinute, phase("ceiling")?.acceptedPerMinute)
        add("forwarding floor / HTTP ceiling (direct)", phase("floor")?.acceptedPerMinute, phase("ceiling")?.acceptedPerMinute)
        add(
            "forwarding floor / HTTP ceiling (through HAProxy)", phase("floor-haproxy")?.acceptedPerMinute,
            phase("ceiling-haproxy")?.acceptedPerMinute)
        add("single node / forwarding floor (direct)", phase("single-node")?.acceptedPerMinute, phase("floor")?.acceptedPerMinute)
        add("cluster / forwarding floor (through HAProxy)", cluster, phase("floor-haproxy")?.acceptedPerMinute)
        add("mock PagerDuty ceiling / cluster delivery", phase("mock")?.acceptedPerMinute, phase("cluster")?.deliveredPerMinute)
        add("cluster ingest / pdagent enqueue (520/min)", cluster, 520)
        add("cluster delivery / pdagent delivery (880/min)", phase("cluster")?.deliveredPerMinute, 880)
        add("cluster ingest / Alertmanager 0.25 HA ingest per replica (106,000/min)", cluster, 106_000)
        add("cluster delivery / Alertmanager 0.25 notifications (600/min)", phase("cluster")?.deliveredPerMinute, 600)

        if let cluster {
            targets.append(
                TargetCheck(name: "cluster accepted events/min", measured: cluster, goal: "≥ 1,000,000", met: cluster >= 1_000_000))
            if let ceiling = phase("ceiling")?.acceptedPerMinute, ceiling > 0 {
                targets.append(
                    TargetCheck(
                        name: "cluster / HTTP ceiling", measured: cluster / ceiling, goal: "≥ 0.80", met: cluster / ceiling >= 0.8))
            }
        }
        if let half = phase("half-rate") {
            targets.append(
                TargetCheck(
                    name: "p99 ingest latency at half the cluster's rate, ms", measured: half.ingestLatency.p99, goal: "< 20",
                    met: half.ingestLatency.p99 < 20))
        }
        let lost = phases.compactMap(\.audit?.lost).reduce(0, +)
        targets.append(TargetCheck(name: "lost events, all phases", measured: Double(lost), goal: "0", met: lost == 0))
    }

    public func write(json path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(self).write(to: URL(fileURLWithPath: path))
    }

    /// The report as a person reads it.
    public var table: String {
        var lines = ["pdrelay benchmark, \(startedAt): \(machine.cores) cores, \(machine.memoryGigabytes) GiB, Linux \(machine.kernel)"]
        lines.append("command: \(command)")
        lines.append("")
        let header = [
            "phase", "accepted/min", "rejected", "delivered/min", "drain s", "ingest p50/p99/p99.9/max ms", "e2e p50/p99 ms", "lost", "dup",
            "order",
        ]
        var rows = [header]
        for phase in phases {
            let rejected = phase.rejectedByStatus.sorted { $0.key < $1.key }.map { "\($0.key)×\($0.value)" }.joined(separator: " ")
            let ingest = phase.ingestLatency
            rows.append([
                phase.name, Self.grouped(phase.acceptedPerMinute), rejected.isEmpty ? "0" : rejected,
                phase.deliveredPerMinute.map(Self.grouped) ?? "-", phase.drainSeconds.map { String(format: "%.1f", $0) } ?? "-",
                [ingest.p50, ingest.p99, ingest.p999, ingest.max].map(LatencySummary.format).joined(separator: "/"),
                phase.endToEndLatency.map { "\(LatencySummary.format($0.p50))/\(LatencySummary.format($0.p99))" } ?? "-",
                phase.audit.map { String($0.lost) } ?? "-", phase.audit.map { "\($0.duplicatedEvents)" } ?? "-",
                phase.audit.map { String($0.orderViolations) } ?? "-",
            ])
        }
        lines += Self.align(rows)
        for phase in phases {
            lines.append("")
            lines.append("\(phase.name): \(phase.target)")
            lines.append(
                "  \(phase.sent) sent in \(String(format: "%.1f", phase.loadSeconds)) s, \(phase.accepted) accepted; ingest ms \(phase.ingestLatency.text)"
            )
            if let e2e = phase.endToEndLatency { lines.append("  end to end ms \(e2e.text)") }
            if let audit = phase.audit {
                lines.append(
                    "  audit: \(audit.acknowledged) acknowledged, \(audit.deliveredDirectly) delivered, \(audit.coalesced) coalesced, \(audit.lost) lost, \(audit.orderViolations) out of order, \(audit.duplicatedEvents) duplicated (\(audit.duplicatesBeyondBound) beyond the bound), \(audit.staleTermDeliveries) stale-term, terms \(audit.deliveringTerms)"
                        + (audit.examples.isEmpty ? "" : "; e.g. \(audit.examples.prefix(5).joined(separator: ", "))"))
            }
            if let statuses = phase.upstreamStatuses, !phase.upstreamFaults.isEmpty {
                lines.append(
                    "  upstream faults: \(phase.upstreamFaults.joined(separator: "; ")); upstream answered \(statuses.sorted { $0.key < $1.key }.map { "\($0.key)×\($0.value)" }.joined(separator: " "))"
                )
            }
            for usage in phase.processes {
                lines.append(
                    "  \(usage.name): CPU \(String(format: "%.1f", usage.cpuSeconds)) s (\(String(format: "%.2f", usage.averageCores)) cores), peak RSS \(Int(usage.peakRSSMegabytes)) MB"
                )
            }
            for outcome in phase.chaos {
                let accepted = outcome.firstAcceptedAfterMilliseconds.map { "\(Int($0)) ms" } ?? "never"
                let delivered =
                    outcome.firstDeliveryInNewerTermMilliseconds.map { ", first delivery in a newer term after \(Int($0)) ms" } ?? ""
                lines.append(
                    "  chaos \(outcome.event) at \(String(format: "%.1f", outcome.atSeconds)) s hit node \(outcome.node) (\(outcome.role), term \(outcome.term)): first 202 after \(accepted)\(delivered)"
                )
            }
            for window in phase.unavailability {
                lines.append(
                    "  no 202 from \(String(format: "%.2f", window.fromSeconds)) s to \(String(format: "%.2f", window.toSeconds)) s (\(Int(window.milliseconds)) ms)"
                )
            }
        }
        if !ratios.isEmpty {
            lines.append("")
            lines.append("ratios (same run, same machine):")
            lines += Self.align(ratios.map { [$0.name, String(format: "%.3g×", $0.value)] }).map { "  " + $0 }
        }
        if !targets.isEmpty {
            lines.append("")
            lines.append("targets:")
            lines += Self.align(targets.map { [$0.name, String(format: "%.4g", $0.measured), $0.goal, $0.met ? "met" : "NOT MET"] })
                .map { "  " + $0 }
        }
        return lines.joined(separator: "\n")
    }

    public static func grouped(_ value: Double) -> String {
        let digits = String(Int(value.rounded()))
        var result = ""
        for (index, character) in digits.reversed().enumerated() {
            if index > 0, index % 3 == 0 { result.append(",") }
            result.append(character)
        }
        return String(result.reversed())
    }

    static func align(_ rows: [[String]]) -> [String] {
        guard let columns = rows.map(\.count).max() else { return [] }
        let widths = (0..<columns).map { column in rows.map { column < $0.count ? $0[column].count : 0 }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { $0.element.padding(toLength: widths[$0.offset], withPad: " ", startingAt: 0) }
                .joined(separator: "  ").trimmingCharacters(in: .whitespaces)
        }
    }
}
