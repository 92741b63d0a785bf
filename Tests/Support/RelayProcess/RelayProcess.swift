import Foundation

/// A real `pdrelay serve` child process on a free loopback port, configured through the
/// environment and logging to a file. The end-to-end tests and the load test use it to kill,
/// restart and measure real nodes.
public final class RelayProcess: @unchecked Sendable {
    private let process = Process()
    public let logPath: String
    public private(set) var port = 0

    /// Starts the node with `PDRELAY_*` settings from `environment` (listen port 0 and the data
    /// directory are set here) and waits up to a minute for its "listening" log line.
    public init(binary: URL, dataDirectory: String, environment extra: [String: String]) async throws {
        logPath = dataDirectory + ".log"
        FileManager.default.createFile(atPath: logPath, contents: nil)
        process.executableURL = binary
        process.arguments = ["serve"]
        var environment = ProcessInfo.processInfo.environment
        environment["PDRELAY_LISTEN_PORT"] = "0"
        environment["PDRELAY_DATA_DIRECTORY"] = dataDirectory
        environment.merge(extra) { _, new in new }
        process.environment = environment
        process.standardOutput = FileHandle(forWritingAtPath: logPath)
        process.standardError = FileHandle(forWritingAtPath: logPath)
        try process.run()
        let deadline = ContinuousClock.now + .seconds(60)
        while port == 0 {
            // The client listener's own line: the settings line and the gateways' lines name
            // addresses too, some with port 0.
            if let listening = log.firstMatch(of: /pdrelay: address=127\.0\.0\.1:(\d+) \[RelayNode\] listening/) {
                port = Int(listening.1)!
            } else if !process.isRunning || ContinuousClock.now > deadline {
                throw RelayProcessFailure(description: "pdrelay did not start listening:\n\(log)")
            } else {
                try await Task.sleep(for: .milliseconds(50))
            }
        }
    }

    public var url: String { "http://127.0.0.1:\(port)" }
    public var pid: pid_t { process.processIdentifier }
    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// `kill -9`: no shutdown code runs.
    public func kill9() async {
        kill(process.processIdentifier, SIGKILL)
        await Self.waitForExit(process)
    }

    /// SIGTERM, then the exit status once the node has shut down.
    public func terminate() async -> Int32 {
        kill(process.processIdentifier, SIGTERM)
        await Self.waitForExit(process)
        return process.terminationStatus
    }

    /// Waits without blocking a thread: `Process.waitUntilExit` would hold one of the few
    /// cooperative threads, and a mock upstream in the same process may need it to answer the
    /// node that is shutting down.
    public static func waitForExit(_ process: Process) async {
        while process.isRunning { try? await Task.sleep(for: .milliseconds(10)) }
    }

    /// User plus system CPU time so far, from /proc.
    public func cpuSeconds() -> Double? { Self.cpuSeconds(pid: process.processIdentifier) }

    public static func cpuSeconds(pid: pid_t) -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}

public struct RelayProcessFailure: Error, CustomStringConvertible {
    public let description: String
    public init(description: String) { self.description = description }
}
