import Foundation
import RelayClient
import RelayProcess
import RelayTestSupport
import Testing

extension RelayClient {
    /// Posts as a client that retries does: a 5xx (HAProxy's 504 when a starved node took over a
    /// second, a 503 from a node too busy or between leaders) or no answer in time is sent again
    /// after a pause, up to ten times; dedup makes a retry of the same bytes harmless. For a
    /// test's setup or load, where the answer's timing is not what is checked. The pause is a
    /// client's backoff, not a wait for a condition.
    func postRetrying(_ path: String, json body: [UInt8]) async throws -> RelayResponse {
        for _ in 1..<10 {
            if let response = try? await post(path, json: body), response.status < 500 { return response }
            try await Task.sleep(for: .milliseconds(200))
        }
        return try await post(path, json: body)
    }
}

extension RelayProcess {
    /// The node built with the tests, with short backoffs so retries show within a test.
    convenience init(dataDirectory: String, upstreamURL: String, environment extra: [String: String] = [:]) async throws {
        try await self.init(
            binary: TestSupport.binDirectory.appendingPathComponent("pdrelay"), dataDirectory: dataDirectory,
            environment: [
                "PDRELAY_UPSTREAM_URL": upstreamURL, "PDRELAY_RETRY_INITIAL_BACKOFF_MILLISECONDS": "50",
                "PDRELAY_RETRY_MAX_BACKOFF_MILLISECONDS": "200",
                // Budgets would pace these tests' bursts to PagerDuty's 2 a second; the tests of
                // budgets themselves set one.
                "PDRELAY_DELIVERY_BUDGET_PER_MINUTE": "0",
            ].merging(extra) { _, new in new })
    }
}

/// Runs one of the package's command-line tools to completion.
struct CommandResult {
    let status: Int32
    let stdout: String
    let stderr: String

    static func run(
        _ tool: String, _ arguments: [String], environment extra: [String: String] = [:], workingDirectory: String? = nil
    ) async throws -> CommandResult {
        let process = Process()
        if let workingDirectory { process.currentDirectoryURL = URL(fileURLWithPath: workingDirectory) }
        // One of this package's executables, or a system tool given by its absolute path.
        process.executableURL =
            tool.hasPrefix("/") ? URL(fileURLWithPath: tool) : TestSupport.binDirectory.appendingPathComponent(tool)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(extra) { _, new in new }
        let directory = TestSupport.temporaryDirectory("cli")
        FileManager.default.createFile(atPath: directory + "/out", contents: nil)
        FileManager.default.createFile(atPath: directory + "/err", contents: nil)
        process.standardOutput = FileHandle(forWritingAtPath: directory + "/out")
        process.standardError = FileHandle(forWritingAtPath: directory + "/err")
        try process.run()
        await RelayProcess.waitForExit(process)
        return CommandResult(
            status: process.terminationStatus, stdout: try String(contentsOfFile: directory + "/out", encoding: .utf8),
            stderr: try String(contentsOfFile: directory + "/err", encoding: .utf8))
    }
}
