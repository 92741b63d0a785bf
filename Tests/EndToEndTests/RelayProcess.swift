import Foundation
import RelayTestSupport
import Testing

/// A real `pdrelay serve` process, configured through the environment, logging to a file.
final class RelayProcess {
    let process = Process()
    let logPath: String
    private(set) var port = 0

    /// Starts the node on a free port and waits until it listens.
    init(dataDirectory: String, upstreamURL: String, environment extra: [String: String] = [:]) throws {
        logPath = dataDirectory + ".log"
        FileManager.default.createFile(atPath: logPath, contents: nil)
        process.executableURL = TestSupport.binDirectory.appendingPathComponent("pdrelay")
        process.arguments = ["serve"]
        var environment = ProcessInfo.processInfo.environment
        environment["PDRELAY_LISTEN_PORT"] = "0"
        environment["PDRELAY_DATA_DIRECTORY"] = dataDirectory
        environment["PDRELAY_UPSTREAM_URL"] = upstreamURL
        environment["PDRELAY_RETRY_INITIAL_BACKOFF_MILLISECONDS"] = "50"
        environment["PDRELAY_RETRY_MAX_BACKOFF_MILLISECONDS"] = "200"
        environment.merge(extra) { _, new in new }
        process.environment = environment
        process.standardOutput = FileHandle(forWritingAtPath: logPath)
        process.standardError = FileHandle(forWritingAtPath: logPath)
        try process.run()
        port = try waitForPort()
    }

    var url: String { "http://127.0.0.1:\(port)" }
    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    private func waitForPort() throws -> Int {
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if let range = log.range(of: #"address=127\.0\.0\.1:(\d+)"#, options: .regularExpression) {
                return Int(log[range].split(separator: ":").last!)!
            }
            guard process.isRunning else { throw ProcessFailure("pdrelay exited early:\n\(log)") }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw ProcessFailure("pdrelay did not start listening within 30 s:\n\(log)")
    }

    /// `kill -9`: no shutdown code runs.
    func kill9() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    func terminate() -> Int32 {
        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
        return process.terminationStatus
    }

    deinit {
        if process.isRunning { kill9() }
    }
}

struct ProcessFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Runs one of the package's command-line tools to completion.
struct CommandResult {
    let status: Int32
    let stdout: String
    let stderr: String

    static func run(_ tool: String, _ arguments: [String], environment extra: [String: String] = [:]) throws -> CommandResult {
        let process = Process()
        process.executableURL = TestSupport.binDirectory.appendingPathComponent(tool)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(extra) { _, new in new }
        let directory = TestSupport.temporaryDirectory("cli")
        FileManager.default.createFile(atPath: directory + "/out", contents: nil)
        FileManager.default.createFile(atPath: directory + "/err", contents: nil)
        process.standardOutput = FileHandle(forWritingAtPath: directory + "/out")
        process.standardError = FileHandle(forWritingAtPath: directory + "/err")
        try process.run()
        process.waitUntilExit()
        return CommandResult(
            status: process.terminationStatus, stdout: try String(contentsOfFile: directory + "/out", encoding: .utf8),
            stderr: try String(contentsOfFile: directory + "/err", encoding: .utf8))
    }
}
