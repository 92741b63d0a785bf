import ArgumentParser
import ClusterHarness
import Foundation
import LoadTestKit
import MockPagerDuty

@main
struct LoadTest: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pdrelay-loadtest",
        abstract: "Measure pdrelay's events per minute, latency and correctness on this machine.",
        subcommands: [Bench.self, SyslogBenchCommand.self, CeilingServerCommand.self, ForwarderServerCommand.self],
        defaultSubcommand: Bench.self)
}

/// Syslog messages per second into durable events, on one node and on three.
struct SyslogBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "syslog", abstract: "Syslog messages per second into durable events (TCP, octet counting), on one node and on three.")

    @Option(help: "Messages per run.") var messages = 20_000
    @Option(help: "TCP connections sending at once.") var connections = 16
    @Option(help: "Node counts to run, comma-separated (1, 3).") var nodes = "1,3"
    @Option(help: "The pdrelay binary (default: beside this one).") var binary: String?

    func run() async throws {
        let binary =
            binary ?? URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("pdrelay").path
        // Run from the package root, as `bench` is (deploy/local-cluster starts the three nodes).
        let packageRoot = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
        for count in nodes.split(separator: ",").compactMap({ Int($0) }) {
            let result = try await SyslogBench.run(
                packageRoot: packageRoot, binary: binary, nodes: count, messages: messages, connections: connections)
            print(result)
        }
    }
}

/// The trivial server of the HTTP-ceiling baseline, started by `bench` as its own process.
struct CeilingServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ceiling-server", abstract: "A server on pdrelay's HTTP stack that only reads each body and answers 202.")

    @Option(help: "Loopback port to listen on.") var port: Int

    func run() async throws { try await CeilingServer.run(port: port) }
}

/// The forwarding floor's server (`ForwarderServer`), started by `bench` as its own process.
struct ForwarderServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forwarder-server",
        abstract: "A server on pdrelay's HTTP stack that sends each body on to the upstream and answers 202 once it has.")

    @Option(help: "Loopback port to listen on.") var port: Int
    @Option(help: "Where each event goes (POST /v2/enqueue below it).") var upstreamURL: String
    @Flag(help: "Answer GET /readyz/leader with 200, so HAProxy sends it the load.") var leader = false

    func run() async throws { try await ForwarderServer.run(port: port, upstreamURL: upstreamURL, leader: leader) }
}

struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the benchmark phases side by side and write the report (table, JSON, SVG charts).",
        discussion: """
            Phases (all on loopback, each with fresh processes):
              ceiling          the generator against a trivial server of the same HTTP stack (the HTTP ceiling)
              ceiling-haproxy  the same through HAProxy (deploy/haproxy.cfg) to three trivial servers
              mock             the generator against the mock PagerDuty itself (the mock's own ceiling)
              floor            one server that only forwards each event to the mock (the forwarding floor)
              floor-haproxy    the same through HAProxy, which sends the load to one of three, as to a leader
              single-node      one pdrelay node, closed loop
              cluster          three nodes behind HAProxy, majority-synced commits (the headline figure)
              half-rate        three nodes, open loop at half the cluster phase's accepted rate
              chaos            three nodes, open loop, with the --chaos schedule
              external         an existing deployment given by --target
            """)

    @Option(help: "Comma-separated phases to run, in this order.")
    var phases = "ceiling,ceiling-haproxy,mock,floor,floor-haproxy,single-node,cluster,half-rate,chaos"
    @Flag(help: "A few seconds of small load, with a leader kill and upstream errors: checks correctness, not speed (CI).")
    var smoke = false
    @Option(help: "Length of the cluster phase (the other phases take --baseline-seconds and --chaos-seconds).")
    var durationSeconds = 60.0
    @Option(help: "Length of the ceiling, mock, single-node and half-rate phases.") var baselineSeconds = 15.0
    @Option(help: "Length of the chaos phase.") var chaosSeconds = 30.0
    @Option(help: "Keep-alive connections of the generator.") var connections = 64
    @Option(help: "Run the cluster and external phases open-loop at this many events/s (default: closed loop).")
    var rate: Double?
    @Option(help: "Open-loop rate of the chaos phase, events/s (default: half the cluster phase's rate, or 200).")
    var chaosRate: Double?
    @Option(help: "Incidents (dedup_keys) the events spread over.") var dedupKeys = 10_000
    @Option(help: "Routing keys the incidents spread over.") var routingKeys = 8
    @Option(help: "Weights of trigger:acknowledge:resolve.") var mix = "6:2:2"
    @Option(help: "Event size in bytes, N or MIN-MAX (300...50000).") var payloadBytes = "600"
    @Option(help: "Bound on events per phase.") var maxEvents = 5_000_000
    @Option(
        parsing: .singleValue,
        help: "Chaos for the chaos phase, ACTION:TARGET@SECONDS[+HOLD] (repeatable; default kill9:leader@8+2 and sigstop:leader@18+3).")
    var chaos: [String] = []
    @Option(
        parsing: .singleValue,
        help: "Upstream fault for the relay phases, KIND[:SHARE][@FROM-TO] (repeatable), e.g. 429:0.05, 503@10-15, slow=300:0.1.")
    var upstreamFault: [String] = []
    @Option(help: "Peer round trip added on every link of the three-node phases, through a user-space proxy (ms).")
    var peerRoundTripMilliseconds: Int64 = 0
    @Option(help: "Up to this much jitter per chunk on each peer link, each way (ms).") var peerJitterMilliseconds: Int64 = 0
    @Option(help: "Share of peer connections reset within 5 s of opening (0...1).") var peerResetShare = 0.0
    @Option(help: "An existing deployment to load (runs the external phase only); point its upstream_url at --mock-port.")
    var target: String?
    @Option(help: "Port of the mock PagerDuty for --target (0: any).") var mockPort = 0
    @Option(help: "The pdrelay binary (build it with -c release for figures that mean anything).")
    var relayBinary = ".build/release/pdrelay"
    @Option(help: "Where the report goes (default loadtest/results/TIMESTAMP).") var outputDir: String?
    @Option(help: "How long to wait after the load for every acknowledged event to reach the mock.") var drainTimeoutSeconds = 300.0
    @Option(help: "Seed of the action mix, sizes and random chaos targets.") var seed: UInt64 = 1

    static let knownPhases = [
        "ceiling", "ceiling-haproxy", "mock", "floor", "floor-haproxy", "single-node", "cluster", "half-rate", "chaos", "external",
    ]

    mutating func validate() throws {
        if smoke {
            phases = "single-node,chaos"
            baselineSeconds = 3
            chaosSeconds = 6
            connections = 16
            dedupKeys = 64
            chaosRate = 100
            payloadBytes = "300-3000"
            if chaos.isEmpty { chaos = ["kill9:leader@2+1"] }
            if upstreamFault.isEmpty { upstreamFault = ["500:0.05"] }
        }
        if target != nil { phases = "external" }
        for phase in phaseList where !Self.knownPhases.contains(phase) {
            throw ValidationError("unknown phase '\(phase)'; phases are \(Self.knownPhases.joined(separator: ", "))")
        }
        if phaseList.contains("external"), target == nil { throw ValidationError("the external phase needs --target URL") }
        let needsRelay = phaseList.contains { ["single-node", "cluster", "half-rate", "chaos"].contains($0) }
        if needsRelay, !FileManager.default.isExecutableFile(atPath: relayBinary) {
            throw ValidationError("no pdrelay binary at \(relayBinary); run: swift build -c release --product pdrelay")
        }
        if phaseList.contains(where: { ["cluster", "half-rate", "chaos", "ceiling-haproxy", "floor-haproxy"].contains($0) }),
            !FileManager.default.isExecutableFile(atPath: "deploy/local-cluster")
        {
            throw ValidationError("run from the package root: deploy/local-cluster and deploy/haproxy.cfg are needed")
        }
        for text in upstreamFault {
            do { _ = try FaultRule(parsing: text) } catch { throw ValidationError(error.description) }
        }
        for event in try chaosEvents() where event.atSeconds + event.holdSeconds >= chaosSeconds {
            throw ValidationError("chaos \(event) must end within the chaos phase (\(chaosSeconds) s; --chaos-seconds)")
        }
        _ = try sizes()
        let problems = try workload(name: "check", seconds: durationSeconds, pacing: .closedLoop).problems()
        guard problems.isEmpty else { throw ValidationError(problems.joined(separator: "; ")) }
        guard (0...65_535).contains(mockPort) else { throw ValidationError("--mock-port must be 0...65535") }
    }

    var phaseList: [String] { phases.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }

    func chaosEvents() throws -> [ChaosEvent] {
        let texts = chaos.isEmpty ? ["kill9:leader@8+2", "sigstop:leader@18+3"] : chaos
        do { return try texts.map { try ChaosEvent(parsing: $0) } } catch { throw ValidationError(String(describing: error)) }
    }

    func sizes() throws -> ClosedRange<Int> {
        let bounds = payloadBytes.split(separator: "-").map { Int($0) }
        guard (1...2).contains(bounds.count), let low = bounds.first!, let high = bounds.last!, low <= high else {
            throw ValidationError("--payload-bytes must be N or MIN-MAX, not \(payloadBytes)")
        }
        return low...high
    }

    func workload(name: String, seconds: Double, pacing: Workload.Pacing) throws -> Workload {
        Workload(
            pacing: pacing, connections: connections, dedupKeys: dedupKeys, routingKeys: routingKeys, mix: try ActionMix(parsing: mix),
            payloadBytes: try sizes(), durationSeconds: seconds, maxEvents: maxEvents, seed: seed,
            runID: "\(UInt32(truncatingIfNeeded: UInt64(Date().timeIntervalSince1970 * 1_000)))-\(name)")
    }

    func run() async throws {
        let started = Date()
        let output = outputDir ?? "loadtest/results/" + Self.timestamp(started)
        try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
        let root = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
        let ownBinary = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        let faults = try upstreamFault.map { try FaultRule(parsing: $0) }
        var reports: [PhaseReport] = []

        for name in phaseList {
            say("— \(name) …")
            var pacing = Workload.Pacing.closedLoop
            var seconds = baselineSeconds
            switch name {
            case "cluster", "external":
                seconds = durationSeconds
                if let rate { pacing = .openLoop(eventsPerSecond: rate) }
            case "half-rate":
                let clusterRate = reports.first { $0.name == "cluster" }?.acceptedPerMinute
                guard let clusterRate, clusterRate > 0 else { throw ValidationError("the half-rate phase runs after the cluster phase") }
                pacing = .openLoop(eventsPerSecond: clusterRate / 60 / 2)
            case "chaos":
                seconds = chaosSeconds
                let clusterRate = reports.first { $0.name == "cluster" }?.acceptedPerMinute
                pacing = .openLoop(eventsPerSecond: chaosRate ?? clusterRate.map { $0 / 60 / 2 } ?? 200)
            default: break
            }
            var runner = PhaseRunner(name: name, workload: try workload(name: name, seconds: seconds, pacing: pacing))
            runner.drainTimeoutSeconds = drainTimeoutSeconds
            if name == "chaos" { runner.chaos = try chaosEvents() }
            let delivers = ["single-node", "cluster", "half-rate", "chaos", "external"].contains(name)
            if delivers { runner.upstreamFaults = faults }

            let upstream = MockPagerDuty(recordsBodies: false)
            try await upstream.start(port: name == "external" ? mockPort : 0)
            let upstreamURL = await upstream.baseURL
            let target: any SystemUnderTest
            let description: String
            switch name {
            case "ceiling":
                target = try await ReferenceTarget(
                    serverCommands: [[ownBinary, "ceiling-server"]], behindHAProxy: false, packageRoot: root,
                    basePort: LocalCluster.freeBasePort())
                description = "one trivial Hummingbird server (reads the body, answers 202)"
            case "ceiling-haproxy":
                target = try await ReferenceTarget(
                    serverCommands: Array(repeating: [ownBinary, "ceiling-server"], count: 3), behindHAProxy: true, packageRoot: root,
                    basePort: LocalCluster.freeBasePort())
                description = "HAProxy (deploy/haproxy.cfg) in front of three trivial servers"
            case "floor", "floor-haproxy":
                let forwarder = [ownBinary, "forwarder-server", "--upstream-url", upstreamURL]
                let behindHAProxy = name == "floor-haproxy"
                target = try await ReferenceTarget(
                    serverCommands: behindHAProxy ? [forwarder + ["--leader"], forwarder, forwarder] : [forwarder],
                    behindHAProxy: behindHAProxy, packageRoot: root, basePort: LocalCluster.freeBasePort())
                description =
                    (behindHAProxy ? "HAProxy (deploy/haproxy.cfg) in front of three forwarders, one of them the leader: " : "")
                    + "a Hummingbird server that sends each body to the mock with AsyncHTTPClient and answers 202 once the mock has"
            case "mock":
                target = ExternalTarget(url: upstreamURL)
                description = "the mock PagerDuty itself (validates and records every event), in the generator's process"
            case "single-node":
                target = try await SingleNodeTarget(binary: relayBinary, upstreamURL: upstreamURL)
                description = "one pdrelay node (synchronous=FULL), delivering to the mock"
            case "external":
                target = ExternalTarget(url: self.target!)
                description = "existing deployment at \(self.target!), delivering to the mock at \(upstreamURL) if so configured"
            default:
                let slowLinks = peerRoundTripMilliseconds > 0 || peerJitterMilliseconds > 0 || peerResetShare > 0
                let links = FaultProxy.LinkConditions(
                    oneWayDelayMilliseconds: peerRoundTripMilliseconds / 2, jitterMilliseconds: peerJitterMilliseconds,
                    resetShare: peerResetShare)
                target = try await ClusterTarget(
                    packageRoot: root, binary: relayBinary, upstreamURL: upstreamURL, peerLinks: slowLinks ? links : nil)
                description =
                    "three pdrelay nodes behind HAProxy, every 202 synced on a majority"
                    + (slowLinks
                        ? ", peer links through a proxy adding \(peerRoundTripMilliseconds) ms round trips (+≤\(2 * peerJitterMilliseconds) ms jitter), \(peerResetShare * 100) % of connections reset"
                        : "")
            }
            let report: PhaseReport
            do {
                report = try await runner.run(
                    target: target, description: description + " — \(Self.describe(runner.workload))", upstream: delivers ? upstream : nil)
            } catch {
                await target.stop()
                await upstream.stop()
                throw error
            }
            await target.stop()
            await upstream.stop()
            reports.append(report)
            say(
                "  \(BenchReport.grouped(report.acceptedPerMinute)) accepted/min, ingest ms \(report.ingestLatency.text)"
                    + (report.audit.map { ", lost \($0.lost), out of order \($0.orderViolations)" } ?? ""))
        }

        var report = BenchReport(
            startedAt: started, command: CommandLine.arguments.joined(separator: " "), machine: .current(), phases: reports)
        report.compare()
        try report.write(json: output + "/report.json")
        try (report.table + "\n").write(toFile: output + "/report.txt", atomically: true, encoding: .utf8)
        for phase in reports {
            try Chart(phase: phase).svg.write(toFile: output + "/chart-\(phase.name).svg", atomically: true, encoding: .utf8)
        }
        print("")
        print(report.table)
        print("\nreport: \(output)/report.txt, \(output)/report.json, charts: \(output)/chart-*.svg")
        if !report.isCorrect {
            print("FAILED: an acknowledged event was lost, delivered out of order, in a stale term or duplicated beyond the bound")
            throw ExitCode.failure
        }
    }

    /// Progress lines go out at once, even when stdout is a pipe (CI).
    func say(_ line: String) { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }

    static func describe(_ workload: Workload) -> String {
        let pacing: String
        switch workload.pacing {
        case .closedLoop: pacing = "closed loop"
        case .openLoop(let rate): pacing = "open loop at \(Int(rate)) events/s"
        }
        let sizes = workload.payloadBytes.count == 1 ? "\(workload.payloadBytes.lowerBound)" : "\(workload.payloadBytes)"
        return
            "\(pacing), \(workload.connections) connections, \(workload.dedupKeys) incidents over \(workload.routingKeys) routing keys, mix \(workload.mix), \(sizes)-byte events"
    }

    static func timestamp(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.dateFormat = "yyyyMMdd-HHmmss"
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: date)
    }
}
