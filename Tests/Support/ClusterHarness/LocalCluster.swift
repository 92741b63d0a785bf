import Foundation
import NIOConcurrencyHelpers
import RelayProcess

/// Three real `pdrelay` processes behind a real HAProxy, started and restarted through
/// `deploy/local-cluster` (the script operators use), for the cluster tests and the failover
/// benchmark. Chaos (kill -9, SIGSTOP) goes straight to the node's pid.
public final class LocalCluster: @unchecked Sendable {
    public static let nodes = 1...3
    public let directory: String
    public let basePort: Int
    private let script: String
    private let environment: [String: String]

    /// Starts the cluster. `settings` are YAML lines added to every node's config;
    /// `environment` (`PDRELAY_*` variables) overrides them, and a binary ignores a variable it
    /// does not know, which lets one harness drive an older build.
    public init(
        packageRoot: URL, binary: URL, directory: String, upstreamURL: String, settings: [String] = [],
        environment extra: [String: String] = [:], peerProxyBase: Int? = nil, basePort: Int = LocalCluster.freeBasePort()
    ) async throws {
        self.directory = directory
        self.basePort = basePort
        script = packageRoot.appendingPathComponent("deploy/local-cluster").path
        var environment = ProcessInfo.processInfo.environment
        environment["PDRELAY_BIN"] = binary.path
        environment["PDRELAY_BASE_PORT"] = String(basePort)
        environment["PDRELAY_UPSTREAM_URL"] = upstreamURL
        environment["PDRELAY_EXTRA_SETTINGS"] = settings.joined(separator: "\n")
        if let peerProxyBase { environment["PDRELAY_PEER_PROXY_BASE"] = String(peerProxyBase) }
        environment.merge(extra) { _, new in new }
        self.environment = environment
        do {
            try await run("start")
        } catch {
            // A start that failed half-way (say, node 3's port was taken) leaves nodes 1 and 2
            // and HAProxy running; nothing else would ever stop them.
            await stop()
            throw error
        }
    }

    public var loadBalancerURL: String { "http://127.0.0.1:\(basePort)" }
    public func nodeURL(_ node: Int) -> String { "http://127.0.0.1:\(basePort + node)" }
    public func peerPort(_ node: Int) -> Int { basePort + 10 + node }
    public func logPath(_ node: Int) -> String { "\(directory)/node-\(node).log" }
    public func log(_ node: Int) -> String { (try? String(contentsOfFile: logPath(node), encoding: .utf8)) ?? "" }

    public func pid(_ node: Int) -> pid_t? { pid(file: "node-\(node).pid") }
    public var loadBalancerPID: pid_t? { pid(file: "haproxy.pid") }

    private func pid(file: String) -> pid_t? {
        (try? String(contentsOfFile: "\(directory)/\(file)", encoding: .utf8))
            .flatMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    /// `kill -9`, then waits until the process is gone.
    public func kill9(_ node: Int) async {
        guard let pid = pid(node) else { return }
        kill(pid, SIGKILL)
        while Self.isAlive(pid) { try? await Task.sleep(for: .milliseconds(5)) }
    }

    public func pause(_ node: Int) { pid(node).map { _ = kill($0, SIGSTOP) } }
    public func resume(_ node: Int) { pid(node).map { _ = kill($0, SIGCONT) } }

    /// SIGTERM through the script, which waits for the node to exit.
    public func terminate(_ node: Int) async throws { try await run("stop-node", String(node)) }

    /// (Re)starts a node and waits until its client port accepts connections.
    public func start(_ node: Int) async throws { try await run("start-node", String(node)) }

    /// Deletes a stopped node's data directory: a replaced machine.
    public func wipe(_ node: Int) throws {
        try FileManager.default.removeItem(atPath: "\(directory)/node-\(node)")
    }

    public func stop() async {
        try? await run("stop")
    }

    public static func isAlive(_ pid: pid_t) -> Bool {
        guard kill(pid, 0) == 0 else { return false }
        // An exited child not yet reaped (a zombie) still answers kill(pid, 0).
        let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
        return !(stat.split(separator: ")").last?.trimmingCharacters(in: .whitespaces).hasPrefix("Z") ?? false)
    }

    /// Waits for a script to exit and returns its status. Foundation's `Process` does not notice
    /// the exit of a script that leaves background children holding its descriptors, so this
    /// reaps the child itself.
    private static func reap(_ pid: pid_t) async -> Int32 {
        var status: Int32 = 0
        while true {
            let result = waitpid(pid, &status, WNOHANG)
            if result == pid { return (status >> 8) & 0xff }
            if result == -1 { return 0 }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    /// A base port with room for the cluster's ports above it (up to +99), below Linux's
    /// ephemeral range (32768–60999), where an outgoing connection could already hold a port a
    /// node wants to bind. Slots are handed out in turn within a process, so clusters of tests
    /// running in parallel never share one (two clusters on one port answer each other's
    /// clients), and a slot whose ports another process holds is skipped.
    public static func freeBasePort() -> Int {
        for _ in 0..<slots {
            let slot = nextSlot.withLockedValue { slot in
                defer { slot = (slot + 1) % slots }
                return slot
            }
            let base = 20_000 + slot * 100
            if [0, 1, 2, 3, 11, 12, 13, 50, 97].allSatisfy({ LoopbackPort.isFree(base + $0) }) { return base }
        }
        return 20_000 + Int.random(in: 0..<slots) * 100
    }

    private static let slots = 120
    private static let nextSlot = NIOLockedValueBox(Int.random(in: 0..<120))

    private func run(_ arguments: String...) async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [script] + [arguments[0], directory] + arguments.dropFirst()
        process.environment = environment
        let output = "\(directory).script.log"
        if !FileManager.default.fileExists(atPath: output) { _ = FileManager.default.createFile(atPath: output, contents: nil) }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: output))
        try handle.seekToEnd()
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        let status = await Self.reap(process.processIdentifier)
        try? handle.close()
        guard status == 0 else {
            let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
            throw RelayProcessFailure(
                description: "deploy/local-cluster \(arguments.joined(separator: " ")) failed:\n\(text.suffix(2_000))")
        }
    }
}
