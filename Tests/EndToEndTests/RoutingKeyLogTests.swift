import ClusterHarness
import Foundation
import MockPagerDuty
import RelayClient
import RelayTestSupport
import Testing

extension OperatorToolTests {
    /// Routing keys are credentials. A cluster is driven through every path that handles one (v2,
    /// change and v1 events, forwarding between nodes, upstream 401, 403, 429, 500 and 400 answers,
    /// a dead letter, a delivery budget in the config, a heartbeat, a maintenance window), and then
    /// every line every process logged is searched for the keys in full. The masked forms must be
    /// there (the lines were written), the full keys nowhere.
    @Suite struct RoutingKeyLogTests {
        static let token = "log-test-admin-token-0123456789"

        static func freshKey() -> String { UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased() }

        /// The masked form the docs promise (first two and last four characters), written out here
        /// rather than taken from the relay's own masking.
        static func masked(_ key: String) -> String { "\(key.prefix(2))…\(key.suffix(4))" }

        @Test func noLogLineOfAClusterRunHoldsARoutingKeyInFull() async throws {
            let keys = (0..<10).map { _ in Self.freshKey() }
            let budgetKey = keys[9]
            try await ClusterRig.run(extraSettings: ["admin_token: \(Self.token)", "delivery_budgets: {\"\(budgetKey)\": \"600\"}"]) {
                rig in
                let leader = try await rig.leader()
                let follower = LocalCluster.nodes.first { $0 != leader }!
                let client = rig.nodes[follower]!
                await rig.upstream.script([
                    .status(401), .status(403), .status(429, retryAfterSeconds: 1), .status(500), .status(400),
                ])
                // One at a time, through a follower (forwarded to the leader), so each meets its answer.
                for (index, key) in keys.prefix(5).enumerated() {
                    let response = try await client.postRetrying(
                        "/v2/enqueue", json: TestSupport.alert(routingKey: key, dedupKey: "log-\(index)"))
                    #expect(response.status == 202)
                    try await ClusterRig.waitUntil("the upstream answered event \(index)") {
                        await rig.upstream.deliveries.contains { $0.routingKey == key }
                    }
                }
                let change = #"{"routing_key":"\#(keys[5])","payload":{"summary":"deploy","source":"ci"}}"#
                #expect(try await client.postRetrying("/v2/change/enqueue", json: Array(change.utf8)).status == 202)
                let v1 = #"{"service_key":"\#(keys[6])","event_type":"trigger","description":"v1 event","incident_key":"v1"}"#
                #expect(try await client.postRetrying("/generic/2010-04-15/create_event.json", json: Array(v1.utf8)).status == 200)

                let heartbeat = #"{"routing_key":"\#(keys[7])","interval_seconds":60,"grace_seconds":0,"source":"cron"}"#
                let window = #"{"routing_keys":["\#(keys[8])"],"duration_minutes":10,"reason":"log test"}"#
                let (saved, opened) = try await RelayClient.with(baseURL: rig.cluster.nodeURL(leader), adminToken: Self.token) { admin in
                    (
                        try await admin.put("/v1/heartbeats/log-test", json: Array(heartbeat.utf8)).status,
                        try await admin.post("/v1/maintenance-windows", json: Array(window.utf8)).status
                    )
                }
                #expect(saved == 200 && opened == 201)
                let checkIn = Array(#"{"routing_key":"\#(keys[7])"}"#.utf8)
                #expect(try await client.postRetrying("/v1/heartbeats/log-test", json: checkIn).status == 200)
                #expect(
                    try await client.postRetrying("/v2/enqueue", json: TestSupport.alert(routingKey: keys[8], dedupKey: "quiet")).status
                        == 202)

                do {
                    // Which event met which scripted answer depends on timing; the script is used up,
                    // and the change and v1 events went through.
                    try await ClusterRig.waitUntil("every scripted answer given") {
                        let deliveries = await rig.upstream.deliveries
                        let accepted = Set(deliveries.filter { (200..<300).contains($0.status) }.compactMap(\.routingKey))
                        return deliveries.filter { $0.status >= 400 }.count == 5 && accepted.contains(keys[5]) && accepted.contains(keys[6])
                    }
                } catch {
                    let seen = await rig.upstream.deliveries.map {
                        "\($0.path) \($0.status) \(keys.firstIndex(of: $0.routingKey ?? "") ?? -1)"
                    }
                    Issue.record("upstream saw: \(seen)")
                    throw error
                }
                let logs = LocalCluster.nodes.map { rig.cluster.log($0) }.joined(separator: "\n")
                // The lines were written, with the keys masked (a retry meets the next scripted answer).
                for words in ["401 Unauthorized", "403 Forbidden", "429 Too Many Requests"] {
                    #expect(keys.contains { logs.contains("\(words) for routing key \(Self.masked($0))") }, "no '\(words)' line")
                }
                #expect(logs.contains("dead-lettered"), "the 400 was not dead-lettered")
                let everything =
                    logs + ((try? String(contentsOfFile: "\(rig.cluster.directory)/haproxy.log", encoding: .utf8)) ?? "")
                    + ((try? String(contentsOfFile: "\(rig.cluster.directory).script.log", encoding: .utf8)) ?? "")
                let lines = everything.split(separator: "\n")
                for (index, key) in keys.enumerated() {
                    let leaks = lines.filter { $0.contains(key) }
                    #expect(leaks.isEmpty, "key \(index) in full in \(leaks.count) lines: \(leaks.prefix(2))")
                }
                print("routing keys: \(lines.count) log lines searched for \(keys.count) keys")
            }
        }
    }
}
