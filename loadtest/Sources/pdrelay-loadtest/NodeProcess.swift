import Foundation

/// A `pdrelay serve` child process on a free loopback port.
final class NodeProcess {
    private let process = Process()
    private let logPath: String
    private(set) var port = 0

    /// Starts the node and waits (up to a minute) for its "listening" log line.
    init(binary: String, dataDirectory: String, environment extra: [String: String]) async throws {
        logPath = dataDirectory + ".log"
        FileManager.default.createFile(atPath: logPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["serve"]
        var environment = ProcessInfo.processInfo.environment
        environment["PDRELAY_LISTEN_PORT"] = "0"
        environment["PDRELAY_DATA_DIRECTORY"] = dataDirectory
        environment["PDRELAY_MAX_QUEUED_EVENTS"] = "5000000"
        environment["PDRELAY_QUEUE_HIGH_WATER_EVENTS"] = "5000000"
        environment["PDRELAY_MAX_DEDUP_KEYS"] = "10000000"
        environment.merge(extra) { _, new in new }
        process.environment = environment
        process.standardError = FileHandle(forWritingAtPath: logPath)
        try process.run()
        let deadline = Date().addingTimeInterval(60)
        while port == 0 {
            if let listening = try? String(contentsOfFile: logPath, encoding: .utf8).firstMatch(of: /address=127\.0\.0\.1:(\d+)/) {
                port = Int(listening.1)!
            } else if !process.isRunning || Date() > deadline {
                throw NodeFailure(log: (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "")
            } else {
                try await Task.sleep(for: .milliseconds(50))
            }
        }
    }

    var url: String { "http://127.0.0.1:\(port)" }

    /// User plus system CPU time so far, from /proc.
    func cpuSeconds() -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    func kill9() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    func terminate() -> Int32 {
        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
        return process.terminationStatus
    }
}

struct NodeFailure: Error, CustomStringConvertible {
    let log: String
    var description: String { "pdrelay did not start:\n\(log)" }
}
