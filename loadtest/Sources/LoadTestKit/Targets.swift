import ClusterHarness
import Foundation
import RelayClient
import RelayProcess

/// Something the generator sends to: what it is, where, and which processes to measure.
public protocol SystemUnderTest: Sendable {
    var url: String { get }
    /// The processes whose CPU and memory the report shows, asked again at every sample.
    func processes() -> [(name: String, pid: pid_t)]
    func stop() async
}

/// A cluster the chaos schedule can act on.
public protocol ChaosControl: Sendable {
    var nodes: [Int] { get }
    /// The node's role and term from its `/v1/cluster`, or nil when it does not answer.
    func view(of node: Int) async -> (role: String, term: Int)?
    func kill9(_ node: Int) async
    func pause(_ node: Int)
    func resume(_ node: Int)
    func terminate(_ node: Int) async throws
    func start(_ node: Int) async throws
}

/// Settings that keep the queue's limits out of what is measured: a run's events all fit, and
/// no routing key's delivery budget paces the mock. They go in as `PDRELAY_*` variables, which a
/// build older than a setting ignores, so one harness measures before and after.
public enum BenchmarkSettings {
    public static let yaml = [
        "max_queued_events: 5000000", "queue_high_water_events: 5000000", "max_dedup_keys: 10000000", "log_level: notice",
        "delivery_budget_per_minute: 0",
    ]
    public static var environment: [String: String] {
        Dictionary(
            uniqueKeysWithValues: yaml.map { line in
                let parts = line.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                return ("PDRELAY_" + parts[0].uppercased(), parts[1])
            })
    }
}

/// One `pdrelay serve` with a fresh store.
public final class SingleNodeTarget: SystemUnderTest {
    private let node: RelayProcess
    private let directory: String

    public init(binary: String, upstreamURL: String) async throws {
        directory = NSTemporaryDirectory() + "pdrelay-bench-node-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        node = try await RelayProcess(
            binary: URL(fileURLWithPath: binary), dataDirectory: directory + "/data",
            environment: BenchmarkSettings.environment.merging(["PDRELAY_UPSTREAM_URL": upstreamURL]) { _, new in new })
    }

    public var url: String { node.url }
    public func processes() -> [(name: String, pid: pid_t)] { [("pdrelay", node.pid)] }

    public func stop() async {
        _ = await node.terminate()
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// Three nodes behind HAProxy, started by `deploy/local-cluster`; with `peerLinks`, every peer
/// link (node i → node j) goes through a `FaultProxy` with those conditions (zones apart).
public final class ClusterTarget: SystemUnderTest, ChaosControl {
    private let cluster: LocalCluster
    private let probe: RelayClient
    private let proxies: [FaultProxy]

    public init(packageRoot: URL, binary: String, upstreamURL: String, peerLinks: FaultProxy.LinkConditions? = nil) async throws {
        let directory = NSTemporaryDirectory() + "pdrelay-bench-cluster-\(UUID().uuidString.prefix(8))"
        let basePort = LocalCluster.freeBasePort()
        let proxyBase = basePort + 50
        var proxies: [FaultProxy] = []
        if let peerLinks {
            for from in LocalCluster.nodes {
                for to in LocalCluster.nodes where to != from {
                    proxies.append(
                        try await FaultProxy.start(
                            listenPort: proxyBase + 10 * from + to, targetPort: basePort + 10 + to, conditions: peerLinks))
                }
            }
        }
        self.proxies = proxies
        cluster = try await LocalCluster(
            packageRoot: packageRoot, binary: URL(fileURLWithPath: binary), directory: directory, upstreamURL: upstreamURL,
            environment: BenchmarkSettings.environment, peerProxyBase: peerLinks == nil ? nil : proxyBase, basePort: basePort)
        probe = RelayClient(baseURL: cluster.loadBalancerURL, timeoutMilliseconds: 1_000)
        try await waitUntilReady()
    }

    public var url: String { cluster.loadBalancerURL }
    public var nodes: [Int] { Array(LocalCluster.nodes) }
    public var directory: String { cluster.directory }

    public func processes() -> [(name: String, pid: pid_t)] {
        LocalCluster.nodes.compactMap { node in cluster.pid(node).map { ("node-\(node)", $0) } }
            + (cluster.loadBalancerPID.map { [("haproxy", $0)] } ?? [])
    }

    public func view(of node: Int) async -> (role: String, term: Int)? {
        guard let view = try? await probe.get(cluster.nodeURL(node), path: "/v1/cluster").json, let role = view["role"] as? String,
            let term = view["term"] as? Int
        else { return nil }
        return (role, term)
    }

    public func kill9(_ node: Int) async { await cluster.kill9(node) }
    public func pause(_ node: Int) { cluster.pause(node) }
    public func resume(_ node: Int) { cluster.resume(node) }
    public func terminate(_ node: Int) async throws { try await cluster.terminate(node) }
    public func start(_ node: Int) async throws { try await cluster.start(node) }

    /// Waits until every node answers /readyz with 200.
    public func waitUntilReady(timeout: Duration = .seconds(60)) async throws {
        let deadline = ContinuousClock.now + timeout
        for node in LocalCluster.nodes {
            while (try? await probe.get(cluster.nodeURL(node), path: "/readyz").status) != 200 {
                guard ContinuousClock.now < deadline else { throw LoadTestError("cluster node \(node) not ready within \(timeout)") }
                try await Task.sleep(for: .milliseconds(50))
            }
        }
    }

    public func stop() async {
        for node in LocalCluster.nodes { cluster.resume(node) }
        await cluster.stop()
        for proxy in proxies { await proxy.stop() }
        try? await probe.shutdown()
        try? FileManager.default.removeItem(atPath: cluster.directory)
    }
}

/// A deployment the harness did not start: only its URL is known, so there is nothing to kill
/// or measure but the answers (and the deliveries, if it delivers to this run's mock).
public struct ExternalTarget: SystemUnderTest {
    public let url: String
    public init(url: String) { self.url = url }
    public func processes() -> [(name: String, pid: pid_t)] { [] }
    public func stop() async {}
}

/// The reference servers: the HTTP ceiling, processes of the same server stack (Hummingbird on
/// SwiftNIO, release build) that only read the body and answer 202, or the forwarding floor
/// (`ForwarderServer`), optionally behind the same HAProxy configuration as the cluster. The
/// generator's rate against the ceiling is the most this machine can do over HTTP with nothing
/// else to do.
public final class ReferenceTarget: SystemUnderTest {
    private let servers: [Process]
    private let ports: [Int]
    private let haproxy: Process?
    private let loadBalancerPort: Int?

    /// Each of `serverCommands` runs one server given `--port N`.
    public init(serverCommands: [[String]], behindHAProxy: Bool, packageRoot: URL, basePort: Int) async throws {
        let count = serverCommands.count
        ports = (1...count).map { basePort + $0 }
        servers = try zip(serverCommands, ports).map { command, port in
            let process = Process()
            process.executableURL = URL(fileURLWithPath: command[0])
            process.arguments = Array(command.dropFirst()) + ["--port", String(port)]
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            return process
        }
        for port in ports { try await Self.waitForPort(port) }
        if behindHAProxy {
            precondition(count == 3, "deploy/haproxy.cfg names three servers")
            let process = Process()
            process.executableURL = URL(fileURLWithPath: HAProxy.binary)
            process.arguments = ["-db", "-f", packageRoot.appendingPathComponent("deploy/haproxy.cfg").path]
            var environment = ProcessInfo.processInfo.environment
            environment["PDRELAY_LB_BIND"] = "127.0.0.1:\(basePort)"
            for (index, port) in ports.enumerated() { environment["PDRELAY_NODE\(index + 1)"] = "127.0.0.1:\(port)" }
            process.environment = environment
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            haproxy = process
            loadBalancerPort = basePort
            try await Self.waitForPort(basePort)
            // HAProxy takes servers as up from the start; let its first checks pass anyway.
            try await Task.sleep(for: .milliseconds(600))
        } else {
            haproxy = nil
            loadBalancerPort = nil
        }
    }

    public var url: String { "http://127.0.0.1:\(loadBalancerPort ?? ports[0])" }

    public func processes() -> [(name: String, pid: pid_t)] {
        servers.enumerated().map { ("server-\($0.offset + 1)", $0.element.processIdentifier) }
            + (haproxy.map { [("haproxy", $0.processIdentifier)] } ?? [])
    }

    public func stop() async {
        for process in servers + (haproxy.map { [$0] } ?? []) where process.isRunning {
            process.terminate()
            await RelayProcess.waitForExit(process)
        }
    }

    static func waitForPort(_ port: Int) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while !LoopbackPort.accepts(port) {
            guard ContinuousClock.now < deadline else { throw LoadTestError("nothing listens on port \(port) after 30 s") }
            try await Task.sleep(for: .milliseconds(50))
        }
    }
}

enum HAProxy {
    static var binary: String {
        ProcessInfo.processInfo.environment["HAPROXY_BIN"]
            ?? ["/usr/sbin/haproxy", "/usr/bin/haproxy", "/usr/local/sbin/haproxy"].first {
                FileManager.default.isExecutableFile(atPath: $0)
            }
            ?? "haproxy"
    }
}
