import ArgumentParser
import Foundation
import RelayClient

/// `pdrelay drill`: rehearses a failover against a running cluster, as an on-call team would on
/// a schedule. Canaries go to a dedicated routing key (a PagerDuty sandbox service, or the
/// mock), half before the leader goes and half after; the drill measures how long until a new
/// leader accepted and then delivered, checks that every canary was delivered in order (from
/// the incident folder the relay keeps), records the result in the replicated state, and exits
/// non-zero when the objective was missed.
struct Drill: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Rehearse a failover: canaries, a leader handover (or kill -9 with --hard), measured and checked.",
        discussion: """
            Give every node's client URL with --url (repeated). Without --hard the leader is asked to hand over \
            (POST /v1/cluster/handover, which needs the admin token); with --hard it is killed with SIGKILL, which works \
            only on the leader's own host. Restart a killed node afterwards (systemd does, with Restart=on-failure).
            """)

    @Option(name: .customLong("url"), help: "A node's base URL; repeat for each node.") var urls: [String]
    @Option(help: "The dedicated routing key the canaries go to (a sandbox service).") var routingKey: String
    @Option(help: "Canary incidents, each a trigger and a resolve; half open before the failover (2-100).") var canaries = 10
    @Option(help: "Seconds from the failover until a canary sent after it is delivered.") var objectiveSeconds = 10.0
    @Flag(help: "kill -9 the leader (on this host) instead of asking it to hand over.") var hard = false
    @Option(help: "The relays' admin_token (default: $PDRELAY_ADMIN_TOKEN).") var adminToken: String?
    @Flag(help: "Print the recorded drill as JSON.") var json = false

    func validate() throws {
        guard (2...30).contains(canaries) else {
            throw ValidationError("--canaries must be 2…30: the incident folder keeps the last 32 events")
        }
        guard (0.1...600).contains(objectiveSeconds) else { throw ValidationError("--objective-seconds must be 0.1…600") }
        guard (2...9).contains(urls.count) else { throw ValidationError("give every node's URL with --url (2 to 9 of them)") }
        guard routingKey.count == 32, routingKey.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber) }) else {
            throw ValidationError("--routing-key must be a 32-character integration key")
        }
    }

    private var token: String? { adminToken ?? ProcessInfo.processInfo.environment["PDRELAY_ADMIN_TOKEN"] }

    func run() async throws {
        let started = Date()
        let run = String(UInt32.random(in: .min ... .max), radix: 16)
        let keys = (0..<canaries).map { "pdrelay-drill-\(run)-\($0)" }
        let (leaderURL, leader, leaderPID) = try await findLeader(excluding: nil, timeout: .seconds(10))
        log("drill \(run): node \(leader) at \(leaderURL) leads; \(canaries) canaries (pdrelay-drill-\(run)-N)")

        // Half the canaries open before the failover and resolve after it: each such incident's
        // order is tested across the leader change. The other half open and resolve after it.
        let before = canaries / 2
        for index in 0..<before { _ = try await send("trigger", keys[index], run: run, avoiding: nil) }
        let failoverAt = ContinuousClock.now
        if hard {
            guard let leaderPID, Self.isPDRelay(leaderPID) else {
                fail("--hard kills the leader's process, which must run on this host (node \(leader) reports pid \(leaderPID ?? 0))")
            }
            kill(leaderPID, SIGKILL)
            log("killed node \(leader) (pid \(leaderPID)) with SIGKILL")
        } else {
            let answer = try await call(leaderURL) { try await $0.post("/v1/cluster/handover", json: Array("{}".utf8)) }
            guard answer.status == 202 else { fail("node \(leader) refused to hand over: HTTP \(answer.status) \(answer.errorText)") }
            log("asked node \(leader) to hand over")
        }
        let avoiding = hard ? leaderURL : nil
        // The first canary after the failover, a new incident, sent until some node accepts it.
        let acceptedBy = try await send("trigger", keys[before], run: run, avoiding: avoiding)
        let acceptedAfter = (ContinuousClock.now - failoverAt).milliseconds
        for index in 0..<before { _ = try await send("resolve", keys[index], run: run, avoiding: avoiding) }
        _ = try await send("resolve", keys[before], run: run, avoiding: avoiding)
        for index in (before + 1)..<canaries {
            _ = try await send("trigger", keys[index], run: run, avoiding: avoiding)
            _ = try await send("resolve", keys[index], run: run, avoiding: avoiding)
        }
        let (newLeaderURL, newLeader, _) = try await findLeader(excluding: avoiding, timeout: .seconds(30))
        log("node \(newLeader) leads now; canary \(before) was accepted by \(acceptedBy) \(acceptedAfter) ms after the failover")

        // Delivered, in order: each canary's folder shows its trigger, then its resolve, both delivered.
        let deadline = failoverAt + .seconds(max(60, objectiveSeconds * 3))
        var deliveredAfter: Int64 = -1
        var histories: [[(action: String, outcome: String)]] = []
        while ContinuousClock.now < deadline {
            histories = []
            for key in keys { histories.append(await history(of: key, from: newLeaderURL)) }
            if deliveredAfter < 0, histories[before].first?.outcome == "delivered" {
                deliveredAfter = (ContinuousClock.now - failoverAt).milliseconds
            }
            if histories.allSatisfy({ $0.count == 2 && $0.allSatisfy { $0.outcome == "delivered" } }) { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        let delivered = histories.filter { $0.count == 2 && $0.allSatisfy { $0.outcome == "delivered" } }.count
        let inOrder = histories.allSatisfy { $0.map(\.action) == ["trigger", "resolve"] }

        let objective = Int64(objectiveSeconds * 1_000)
        var problems: [String] = []
        if newLeader == leader { problems.append("node \(leader) still leads") }
        if delivered < canaries { problems.append("\(delivered) of \(canaries) canaries delivered (trigger and resolve)") }
        if !inOrder { problems.append("a canary's events are out of order: \(histories.map { $0.map(\.action) })") }
        if deliveredAfter < 0 || deliveredAfter > objective {
            problems.append(
                "delivery after the failover took \(deliveredAfter < 0 ? "longer than the drill waited" : "\(deliveredAfter) ms"), objective \(objective) ms"
            )
        }
        let record: [String: Any] = [
            "id": 0, "started_at_milliseconds": Int64(started.timeIntervalSince1970 * 1_000), "hard": hard, "from_leader": leader,
            "to_leader": newLeader == leader ? 0 : newLeader, "accepted_after_milliseconds": acceptedAfter,
            "delivered_after_milliseconds": deliveredAfter, "canaries": canaries, "delivered": delivered, "in_order": inOrder,
            "objective_milliseconds": objective, "passed": problems.isEmpty,
            "note": String(problems.joined(separator: "; ").utf8.prefix(500)) ?? "",
        ]
        let saved = try await call(newLeaderURL) {
            try await $0.post("/v1/drills", json: Array(try JSONSerialization.data(withJSONObject: record)))
        }
        if json { print(saved.text) }
        let kind = hard ? "kill -9" : "handover"
        if problems.isEmpty {
            print(
                "PASS: \(kind) of node \(leader) -> node \(newLeader): accepted after \(acceptedAfter) ms, delivered after \(deliveredAfter) ms (objective \(objective) ms); \(delivered)/\(canaries) canaries delivered in order"
            )
        } else {
            print("FAIL: \(kind) of node \(leader): \(problems.joined(separator: "; "))")
        }
        if saved.status >= 300 { log("the drill was not recorded: HTTP \(saved.status) \(saved.errorText)") }
        if !problems.isEmpty { throw ExitCode(1) }
    }

    // MARK: the cluster

    /// The node that leads, with the pid it reports (for `--hard`). When none does in time, the
    /// failure says what each node last answered.
    private func findLeader(excluding excluded: String?, timeout: Duration) async throws -> (url: String, id: Int, pid: Int32?) {
        let deadline = ContinuousClock.now + timeout
        var answers: [String: String] = [:]
        while ContinuousClock.now < deadline {
            for url in urls where url != excluded {
                do {
                    let response = try await call(url) { try await $0.get("/v1/status") }
                    let cluster = response.json?["cluster"] as? [String: Any]
                    if let cluster, cluster["role"] as? String == "leader", let id = cluster["node_id"] as? Int {
                        return (url, id, (response.json?["pid"] as? Int).map(Int32.init))
                    }
                    answers[url] = cluster.map { "role \($0["role"] ?? "?")" } ?? "HTTP \(response.status)"
                } catch {
                    answers[url] = "no answer (\(error))"
                }
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        fail(
            "no node leads after \(timeout): \(answers.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: "; "))"
        )
    }

    static func isPDRelay(_ pid: Int32) -> Bool {
        ((try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? "").contains("pdrelay")
    }

    /// A canary's events as its incident folder lists them: action and outcome, in the order accepted.
    private func history(of key: String, from url: String) async -> [(action: String, outcome: String)] {
        let answer = try? await call(url) { try await $0.get("/v1/incidents/\(key)?routing_key=\(routingKey)") }
        let entries = answer?.json?["history"] as? [[String: Any]] ?? []
        return entries.map { ($0["action"] as? String ?? "", $0["outcome"] as? String ?? "") }
    }

    // MARK: canaries

    static func event(action: String, dedupKey: String, run: String, routingKey: String) -> [UInt8] {
        var event: [String: Any] = ["routing_key": routingKey, "event_action": action, "dedup_key": dedupKey]
        if action == "trigger" {
            event["payload"] = ["summary": "pdrelay drill \(run): canary \(dedupKey)", "source": "pdrelay-drill", "severity": "info"]
        }
        return Array((try? JSONSerialization.data(withJSONObject: event, options: [.sortedKeys])) ?? Data())
    }

    /// Returns the URL that accepted it.
    private func send(_ action: String, _ key: String, run: String, avoiding: String?) async throws -> String {
        try await sendRetrying(Self.event(action: action, dedupKey: key, run: run, routingKey: routingKey), avoiding: avoiding)
    }

    /// Sends to each node in turn until one answers 202 (a client retrying through a balancer;
    /// a retry of the same bytes is recognised and not queued twice).
    private func sendRetrying(_ body: [UInt8], avoiding: String?) async throws -> String {
        let deadline = ContinuousClock.now + .seconds(60)
        let targets = urls.filter { $0 != avoiding }
        var turn = 0
        while ContinuousClock.now < deadline {
            let url = targets[turn % targets.count]
            turn += 1
            if let answer = try? await call(url, { try await $0.post("/v2/enqueue", json: body) }), answer.status == 202 { return url }
            try await Task.sleep(for: .milliseconds(20))
        }
        fail("no node accepted a canary within 60 s")
    }

    private func call(_ url: String, _ request: (RelayClient) async throws -> RelayResponse) async throws -> RelayResponse {
        try await RelayClient.with(baseURL: url, adminToken: token, timeoutMilliseconds: 2_000) { try await request($0) }
    }

    private func log(_ line: String) { FileHandle.standardError.write(Data("pdrelay drill: \(line)\n".utf8)) }

    private func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("pdrelay drill: \(message)\n".utf8))
        Foundation.exit(2)
    }
}

extension Duration {
    fileprivate var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000 + attoseconds / 1_000_000_000_000_000
    }
}
