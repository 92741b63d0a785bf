import Foundation
import NIOConcurrencyHelpers
import RelayProcess

/// CPU time and peak resident memory of each process of the system under test, read from /proc
/// twice a second. A node killed and restarted is one entry: its incarnations' CPU adds up and
/// its peak is the highest any of them reached.
public final class ProcessSampler: Sendable {
    public struct Usage: Sendable, Codable, Equatable {
        public var name: String
        public var cpuSeconds = 0.0
        public var peakRSSMegabytes = 0.0
        /// CPU seconds per second of the sampled span: 1.0 is one core kept busy.
        public var averageCores = 0.0
    }

    private struct Incarnation {
        var pid: pid_t
        var firstCPU: Double
        var lastCPU: Double
    }

    private struct State {
        var incarnations: [String: [Incarnation]] = [:]
        var peakKilobytes: [String: Int] = [:]
        var stopped = false
    }

    private let state = NIOLockedValueBox(State())
    private let processes: @Sendable () -> [(name: String, pid: pid_t)]
    private let started = ContinuousClock.now

    /// `processes` is asked at every sample, so restarted nodes are followed by their new pid.
    public init(processes: @escaping @Sendable () -> [(name: String, pid: pid_t)]) {
        self.processes = processes
        sample()
    }

    /// Samples until `stop()`.
    public func run() async {
        while !state.withLockedValue({ $0.stopped }) {
            try? await Task.sleep(for: .milliseconds(500))
            sample()
        }
    }

    public func stop() -> [Usage] {
        sample()
        let elapsed = (ContinuousClock.now - started).seconds
        return state.withLockedValue { state in
            state.stopped = true
            return state.incarnations.keys.sorted().map { name in
                let cpu = state.incarnations[name, default: []].reduce(0) { $0 + $1.lastCPU - $1.firstCPU }
                return Usage(
                    name: name, cpuSeconds: cpu, peakRSSMegabytes: Double(state.peakKilobytes[name] ?? 0) / 1_024,
                    averageCores: elapsed > 0 ? cpu / elapsed : 0)
            }
        }
    }

    private func sample() {
        let readings = processes().compactMap { process -> (String, pid_t, Double, Int)? in
            guard let cpu = RelayProcess.cpuSeconds(pid: process.pid) else { return nil }
            return (process.name, process.pid, cpu, Self.peakResidentKilobytes(pid: process.pid) ?? 0)
        }
        state.withLockedValue { state in
            for (name, pid, cpu, peak) in readings {
                var list = state.incarnations[name, default: []]
                if let last = list.indices.last, list[last].pid == pid {
                    list[last].lastCPU = cpu
                } else {
                    // A process first seen mid-run (a restart) counts from zero: it started now.
                    list.append(Incarnation(pid: pid, firstCPU: list.isEmpty ? cpu : 0, lastCPU: cpu))
                }
                state.incarnations[name] = list
                state.peakKilobytes[name] = max(state.peakKilobytes[name] ?? 0, peak)
            }
        }
    }

    /// VmHWM, the peak resident set, from /proc/PID/status.
    public static func peakResidentKilobytes(pid: pid_t) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") })
        else { return nil }
        return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
    }
}
