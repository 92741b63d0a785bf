import ArgumentParser
import Foundation
import RelayClient

/// `pdrelay status`: the cluster at a glance in a terminal, from each node's `/v1/status` (the
/// same answer the status page reads). A node that does not answer is a row that says so.
struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the cluster: nodes, roles, term, leader, lease, lag, readiness, queue, delivery rate, last errors.",
        discussion: "Give every node's client URL with --url (repeated) to see the whole cluster; one URL shows that node's view.")

    @Option(name: .customLong("url"), help: "A node's base URL; repeat for each node.") var urls: [String] = ["http://127.0.0.1:8081"]
    @Flag(help: "Print the nodes' /v1/status answers as one JSON array.") var json = false
    @Flag(help: "Refresh every --interval seconds until interrupted.") var watch = false
    @Option(help: "Seconds between refreshes with --watch.") var interval = 2.0

    func validate() throws {
        guard (0.2...3_600).contains(interval) else { throw ValidationError("--interval must be between 0.2 and 3600 seconds") }
        guard (1...9).contains(urls.count) else { throw ValidationError("give between 1 and 9 --url values") }
    }

    func run() async throws {
        var answers: [Answer]
        repeat {
            answers = await fetch()
            if watch { print("\u{1B}[H\u{1B}[2J", terminator: "") }
            if json {
                let array = answers.map { $0.status ?? ["url": $0.url, "error": $0.error ?? ""] }
                print(String(decoding: try JSONSerialization.data(withJSONObject: array, options: [.sortedKeys]), as: UTF8.self))
            } else {
                print(Self.render(answers))
            }
            if watch { try await Task.sleep(for: .milliseconds(Int(interval * 1_000))) }
        } while watch
        // Without --watch, a cluster with a node down or not ready exits 1, for scripts.
        if answers.contains(where: { ($0.status?["ready"] as? Bool) != true }) { throw ExitCode(1) }
    }

    struct Answer: Sendable {
        let url: String
        /// The `/v1/status` answer's bytes, when the node answered 200.
        let body: [UInt8]?
        let error: String?

        var status: [String: Any]? {
            body.flatMap { (try? JSONSerialization.jsonObject(with: Data($0))) as? [String: Any] }
        }
    }

    private func fetch() async -> [Answer] {
        await withTaskGroup(of: (Int, Answer).self) { group in
            for (index, url) in urls.enumerated() {
                group.addTask {
                    do {
                        let response = try await RelayClient.with(baseURL: url, timeoutMilliseconds: 2_000) {
                            try await $0.get("/v1/status")
                        }
                        guard response.status == 200 else {
                            return (index, Answer(url: url, body: nil, error: "HTTP \(response.status)"))
                        }
                        return (index, Answer(url: url, body: response.body, error: nil))
                    } catch {
                        return (index, Answer(url: url, body: nil, error: "not answering (\(error))"))
                    }
                }
            }
            var answers: [(Int, Answer)] = []
            for await answer in group { answers.append(answer) }
            return answers.sorted { $0.0 < $1.0 }.map(\.1)
        }
    }

    static func render(_ answers: [Answer]) -> String {
        func int(_ value: Any?) -> String { (value as? NSNumber).map { "\($0.int64Value)" } ?? "-" }
        var rows: [[String]] = []
        var problems: [(at: Int64, text: String)] = []
        var notes: [String] = []
        for answer in answers {
            guard let status = answer.status, let cluster = status["cluster"] as? [String: Any] else {
                rows.append([answer.url, "-", "-", "-", "-", "-", "-", "NO", "-", "-"])
                notes.append("\(answer.url): \(answer.error ?? "no answer")")
                continue
            }
            let queue = status["queue"] as? [String: Any] ?? [:]
            let series = (status["deliveries"] as? [String: Any])?["series"] as? [[String: Any]] ?? []
            // The last minute: six 10-second buckets.
            let perMinute = series.suffix(6).reduce(0) { $0 + ((($1["delivered"] as? NSNumber)?.intValue) ?? 0) }
            rows.append([
                "\(int(cluster["node_id"])) \(answer.url)", cluster["role"] as? String ?? "-", int(cluster["term"]),
                int(cluster["leader_id"]), "\(int(cluster["lease_remaining_ms"])) ms", int(cluster["apply_lag_entries"]),
                (status["ready"] as? Bool) == true ? "yes" : "NO", "\(int(queue["pending"]))/\(int(queue["dead"]))", "\(perMinute)",
                "\((cluster["problems"] as? [String] ?? []).count)",
            ])
            for problem in cluster["problems"] as? [String] ?? [] { notes.append("node \(int(cluster["node_id"])): \(problem)") }
            for problem in status["recent_problems"] as? [[String: Any]] ?? [] {
                problems.append(((problem["at_ms"] as? NSNumber)?.int64Value ?? 0, problem["text"] as? String ?? ""))
            }
        }
        var text = Table.render(
            ["NODE", "ROLE", "TERM", "LEADER", "LEASE", "LAG", "READY", "PENDING/DEAD", "DELIVERED/MIN", "PROBLEMS"], rows)
        if !notes.isEmpty { text += "\n\nproblems:\n" + notes.map { "  " + $0 }.joined(separator: "\n") }
        let recent = problems.sorted { $0.at > $1.at }.prefix(10)
        if !recent.isEmpty {
            let formatter = ISO8601DateFormatter()
            text +=
                "\n\nlast errors:\n"
                + recent.map { "  \(formatter.string(from: Date(timeIntervalSince1970: Double($0.at) / 1_000)))  \($0.text)" }
                .joined(separator: "\n")
        }
        return text
    }
}
