import ClusterHarness
import Foundation
import MockPagerDuty
import RelayClient
import RelayTestSupport
import Testing

/// Noise control across three real nodes: every node gives the same answers, before and after a
/// `kill -9` of the leader.
@Suite(.serialized, RelayLoad.cluster) struct NoiseControlClusterTests {
    @Test func everyNodeBuildsTheSameTemplatedKeyBeforeAndAfterTheLeaderIsKilled() async throws {
        try await ClusterRig.run(extraSettings: [#"dedup_key_templates: {"*": "{source}/{component}"}"#]) { rig in
            func trigger(_ summary: String) -> [UInt8] {
                TestSupport.alert(extra: ["payload": ["summary": summary, "source": "plc-7", "severity": "error", "component": "pump-2"]])
            }
            func key(of response: RelayResponse) -> String? { response.json?["dedup_key"] as? String }
            var keys: [String?] = []
            for node in LocalCluster.nodes {
                let response = try await rig.nodes[node]!.post("/v2/enqueue", json: trigger("pressure low, seen by node \(node)"))
                #expect(response.status == 202)
                keys.append(key(of: response))
            }
            let leader = try await rig.leader()
            await rig.cluster.kill9(leader)
            let survivor = try await rig.leader(otherThan: leader)
            var afterKill: RelayResponse?
            try await ClusterRig.waitUntil("a 202 from the new leader") {
                afterKill = try? await rig.nodes[survivor]!.post("/v2/enqueue", json: trigger("after the kill"))
                return afterKill?.status == 202
            }
            keys.append(afterKill.flatMap(key))
            #expect(keys == Array(repeating: "plc-7/pump-2", count: 4))
            // The resolve, by the key every node gave, is the marker: a key's events go out in
            // order, so every trigger has reached the upstream once it has.
            let resolve = try await rig.nodes[survivor]!.post("/v2/enqueue", json: TestSupport.alert("resolve", dedupKey: "plc-7/pump-2"))
            #expect(resolve.status == 202)
            try await ClusterRig.waitUntil("the resolve delivered") {
                await rig.upstream.accepted.contains { $0.action == "resolve" && $0.dedupKey == "plc-7/pump-2" }
            }
            let delivered = await rig.upstream.accepted.filter { $0.dedupKey == "plc-7/pump-2" }
            // A queued trigger may be replaced by a later one of the same key (coalescing), so
            // not every summary need arrive; the last trigger's must, and nothing else.
            let summaries = Set(delivered.compactMap { ($0.json?["payload"] as? [String: Any])?["summary"] as? String })
            let sent = Set(LocalCluster.nodes.map { "pressure low, seen by node \($0)" } + ["after the kill"])
            #expect(summaries.contains("after the kill"))
            #expect(summaries.isSubset(of: sent), "\(summaries)")
            #expect(delivered.last?.action == "resolve")
        }
    }

    /// The folder of `dedupKey` as `node` shows it: its counts and its history's outcomes.
    static func folder(_ rig: ClusterRig, _ node: Int, _ dedupKey: String) async -> (
        counts: [String: Int], outcomes: [String], state: String?
    ) {
        let folder = (try? await rig.nodes[node]!.get("/v1/incidents/\(dedupKey)").json) ?? [:]
        let incident = folder["incident"] as? [String: Any] ?? [:]
        let history = folder["history"] as? [[String: Any]] ?? []
        return (incident["counts"] as? [String: Int] ?? [:], history.compactMap { $0["outcome"] as? String }, incident["state"] as? String)
    }

    @Test func foldersAndRepeatSuppressionGiveTheSameAnswersOnEveryNodeAcrossAKill9OfTheLeader() async throws {
        try await ClusterRig.run { rig in
            let leader = try await rig.leader()
            let client = rig.nodes[leader]!
            func trigger(_ note: String) -> [UInt8] {
                TestSupport.alert(dedupKey: "pump-7", summary: "pump 7 pressure low", extra: ["client": note])
            }
            #expect(try await client.postRetrying("/v2/enqueue", json: trigger("first")).status == 202)
            _ = try await rig.upstream.waitForAccepted(until: { $0.dedupKey == "pump-7" })
            #expect(try await client.postRetrying("/v2/enqueue", json: trigger("repeat before the kill")).status == 202)
            #expect(try await client.postRetrying("/v2/enqueue", json: TestSupport.alert("acknowledge", dedupKey: "pump-7")).status == 202)
            _ = try await rig.upstream.waitForAccepted(until: { $0.dedupKey == "pump-7" && $0.action == "acknowledge" })
            let before = (
                [
                    "triggers": 1, "acknowledges": 1, "resolves": 0, "repeats_suppressed": 1, "maintenance_suppressed": 0, "held": 0,
                    "digested": 0,
                ],
                ["delivered", "repeat_suppressed", "delivered"]
            )
            for node in LocalCluster.nodes {
                try await ClusterRig.waitUntil("node \(node)'s folder before the kill") {
                    let folder = await Self.folder(rig, node, "pump-7")
                    return (folder.counts, folder.outcomes) == before && folder.state == "acknowledged"
                }
            }

            await rig.cluster.kill9(leader)
            let survivor = try await rig.leader(otherThan: leader)
            // The new leader knows the incident is open with this trigger: the repeat is held back.
            try await ClusterRig.waitUntil("a 202 from the new leader") {
                (try? await rig.nodes[survivor]!.post("/v2/enqueue", json: trigger("repeat after the kill")))?.status == 202
            }
            #expect(
                try await rig.nodes[survivor]!.postRetrying("/v2/enqueue", json: TestSupport.alert("resolve", dedupKey: "pump-7")).status
                    == 202)
            _ = try await rig.upstream.waitForAccepted(until: { $0.dedupKey == "pump-7" && $0.action == "resolve" })
            let delivered = await rig.upstream.accepted.filter { $0.dedupKey == "pump-7" }
            // A request cut by the kill may arrive twice (at least once), never a repeat.
            #expect(
                Set(delivered.map { ($0.json?["client"] as? String ?? "") + ($0.action ?? "") }) == [
                    "firsttrigger", "acknowledge", "resolve",
                ],
                "no repeat was forwarded, before or after the kill")

            try await rig.cluster.start(leader)
            try await rig.waitUntilReady(LocalCluster.nodes)
            let after = (
                [
                    "triggers": 1, "acknowledges": 1, "resolves": 1, "repeats_suppressed": 2, "maintenance_suppressed": 0, "held": 0,
                    "digested": 0,
                ],
                ["delivered", "repeat_suppressed", "delivered", "repeat_suppressed", "delivered"]
            )
            for node in LocalCluster.nodes {
                try await ClusterRig.waitUntil("node \(node)'s folder after the kill") {
                    let folder = await Self.folder(rig, node, "pump-7")
                    return (folder.counts, folder.outcomes) == after && folder.state == "resolved"
                }
            }
        }
    }

    /// `pdrelay maintenance` against the cluster: a window that holds, started on one node, ends
    /// after the leader is killed, and the new leader delivers what it held, in order.
    @Test func aHoldingMaintenanceWindowOutlivesAKill9OfTheLeader() async throws {
        let token = "maintenance-test-admin-token"
        try await ClusterRig.run(extraSettings: ["admin_token: \(token)"]) { rig in
            let leader = try await rig.leader()
            let follower = LocalCluster.nodes.first { $0 != leader }!
            func maintenance(_ node: Int, _ arguments: [String]) async throws -> CommandResult {
                try await CommandResult.run(
                    "pdrelay", ["maintenance"] + arguments + ["--url", rig.cluster.nodeURL(node), "--admin-token", token])
            }
            func trigger(_ key: String, _ summary: String) -> [UInt8] { TestSupport.alert(dedupKey: key, summary: summary) }
            #expect(try await rig.nodes[leader]!.postRetrying("/v2/enqueue", json: trigger("pump-1", "pressure low")).status == 202)
            _ = try await rig.upstream.waitForAccepted(until: { $0.dedupKey == "pump-1" })

            let started = try await maintenance(
                follower,
                [
                    "start", "--routing-key", TestSupport.routingKey(), "--minutes", "60", "--reason", "pump station maintenance",
                    "--hold",
                ])
            #expect(started.status == 0, "\(started.stderr)")
            #expect(started.stdout.contains("maintenance window 1 active"), "\(started.stdout)")
            for body in [trigger("pump-2", "pressure low"), trigger("pump-2", "pressure very low")] {
                #expect(try await rig.nodes[leader]!.postRetrying("/v2/enqueue", json: body).status == 202)
            }
            // Opened before the window: its acknowledge goes through at once.
            #expect(
                try await rig.nodes[leader]!.postRetrying("/v2/enqueue", json: TestSupport.alert("acknowledge", dedupKey: "pump-1")).status
                    == 202)
            _ = try await rig.upstream.waitForAccepted(until: { $0.dedupKey == "pump-1" && $0.action == "acknowledge" })
            try await ClusterRig.waitUntil("every node's window held two events") {
                for node in LocalCluster.nodes {
                    let listed = try? await maintenance(node, ["list", "--json"])
                    let object = listed.flatMap { try? JSONSerialization.jsonObject(with: Data($0.stdout.utf8)) as? [String: Any] }
                    let window = (object?["windows"] as? [[String: Any]])?.first
                    guard window?["reason"] as? String == "pump station maintenance", window?["holding"] as? Int == 2 else { return false }
                }
                return true
            }

            #expect(await rig.upstream.accepted.allSatisfy { $0.dedupKey != "pump-2" })
            await rig.cluster.kill9(leader)
            let survivor = try await rig.leader(otherThan: leader)
            // The new leader holds the window too; it is moved to end two seconds from now.
            let (wallStart, monotonicStart) = (Date(), ContinuousClock.now)
            let endDate = Date(timeIntervalSince1970: (wallStart.timeIntervalSince1970 + 2).rounded(.up))
            // The window's end on the mock's clock, which records when each request arrived.
            let endInstant = monotonicStart + .milliseconds(Int64(endDate.timeIntervalSince(wallStart) * 1_000))
            let extended = try await maintenance(survivor, ["extend", "1", "--end", ISO8601DateFormatter().string(from: endDate)])
            #expect(
                extended.status == 0 && extended.stdout.contains("maintenance window 1 now ends"), "\(extended.stdout) \(extended.stderr)")
            let delivered = try await rig.upstream.waitForAccepted(until: {
                $0.dedupKey == "pump-2" && $0.json?.description.contains("very low") == true
            })
            let pumps = delivered.filter { $0.dedupKey == "pump-2" }
            #expect(pumps.allSatisfy { $0.arrivedAt >= endInstant }, "nothing held went before the window's end")
            let summaries = pumps.map { ($0.json?["payload"] as? [String: Any])?["summary"] as? String ?? "" }
            // A request cut by the kill may arrive twice, never out of order.
            #expect(summaries.reduce(into: [String]()) { if $0.last != $1 { $0.append($1) } } == ["pressure low", "pressure very low"])

            let ended = try await maintenance(survivor, ["list"])
            #expect(ended.stdout.contains("ended"), "\(ended.stdout)")
            let second = try await maintenance(
                survivor, ["start", "--routing-key", TestSupport.routingKey(), "--minutes", "30", "--reason", "second"])
            #expect(second.stdout.contains("maintenance window 2 active"), "\(second.stdout)")
            let ended2 = try await maintenance(survivor, ["end", "2"])
            #expect(ended2.stdout.contains("maintenance window 2 ended; 0 held event(s) released"), "\(ended2.stdout)")
            let unknown = try await maintenance(survivor, ["end", "9"])
            #expect(unknown.status == 1 && unknown.stderr.contains("HTTP 404"))
        }
    }

    /// A leader failover between two check-ins raises no false alarm; a missed check-in then
    /// triggers once, on the new leader, and the next check-in resolves it.
    @Test func aHeartbeatRaisesNoFalseAlarmAcrossAKill9OfTheLeaderAndAMissStillTriggers() async throws {
        let token = "heartbeat-test-admin-token"
        try await ClusterRig.run(extraSettings: ["admin_token: \(token)"]) { rig in
            let leader = try await rig.leader()
            let admin = RelayClient(baseURL: rig.cluster.nodeURL(leader), adminToken: token)
            let routingKey = TestSupport.routingKey(31)
            let spec = Array(#"{"routing_key":"\#(routingKey)","interval_seconds":10,"grace_seconds":2,"source":"scada-7"}"#.utf8)
            #expect(try await admin.put("/v1/heartbeats/scada-poller", json: spec).status == 200)
            try await admin.shutdown()
            let checkIn = Array(#"{"routing_key":"\#(routingKey)","interval_seconds":10}"#.utf8)
            /// Returns when the check-in that succeeded was sent: the node applied it after that.
            func checkInOn(_ node: Int) async throws -> ContinuousClock.Instant {
                var sent = ContinuousClock.now
                try await ClusterRig.waitUntil("a check-in on node \(node)") {
                    sent = .now
                    return (try? await rig.nodes[node]!.post("/v1/heartbeats/scada-poller", json: checkIn))?.status == 200
                }
                return sent
            }
            _ = try await checkInOn(leader)
            // Every node has the check-in before the leader dies, so what the new leader knows
            // of it is the replicated count, never the old leader's timer.
            let readers = LocalCluster.nodes.map { RelayClient(baseURL: rig.cluster.nodeURL($0), adminToken: token) }
            try await ClusterRig.waitUntil("every node has applied the check-in") {
                for reader in readers where (try? await reader.get("/v1/heartbeats/scada-poller"))?.json?["check_ins"] as? Int != 1 {
                    return false
                }
                return true
            }
            for reader in readers { try await reader.shutdown() }
            // Kill the leader between two check-ins; the next one goes to the new leader, within
            // the interval the old leader's timer was counting.
            await rig.cluster.kill9(leader)
            let survivor = try await rig.leader(otherThan: leader)
            let lastCheckIn = try await checkInOn(survivor)
            // Now it stops checking in. The alarm is the marker: no heartbeat event may come before it.
            let events = try await rig.upstream.waitForAccepted(
                until: { $0.dedupKey == "pdrelay-heartbeat/scada-poller" }, timeout: .seconds(60))
            let alarm = try #require(events.last)
            #expect(alarm.action == "trigger")
            #expect(alarm.arrivedAt - lastCheckIn >= .seconds(12), "no alarm before the last check-in's interval and grace ran out")
            #expect((alarm.json?["payload"] as? [String: Any])?["source"] as? String == "scada-7")

            _ = try await checkInOn(survivor)
            let resolved = try await rig.upstream.waitForAccepted(
                until: { $0.dedupKey == "pdrelay-heartbeat/scada-poller" && $0.action == "resolve" })
            let heartbeatEvents = resolved.filter { $0.dedupKey == "pdrelay-heartbeat/scada-poller" }.map { $0.action ?? "" }
            // A request cut short may arrive twice (at least once); collapsed, one alarm then its resolve.
            let collapsed = heartbeatEvents.reduce(into: [String]()) { if $0.last != $1 { $0.append($1) } }
            #expect(collapsed == ["trigger", "resolve"], "\(heartbeatEvents)")
        }
    }

    /// Info triggers taken by the old leader and by the new one after a `kill -9` go out as one
    /// digest a minute after the first, from the new leader, with every event counted.
    @Test func aDigestCountsEveryEventAcrossAKill9OfTheLeader() async throws {
        try await ClusterRig.run(extraSettings: [#"digests: {"*": "info:60"}"#]) { rig in
            let leader = try await rig.leader()
            func info(_ index: Int) -> [UInt8] {
                TestSupport.alert(
                    dedupKey: "sensor-\(index % 4)",
                    extra: ["payload": ["summary": "humidity \(index)", "source": "rtu-\(index % 2)", "severity": "info"]])
            }
            for index in 0..<20 { #expect(try await rig.nodes[leader]!.postRetrying("/v2/enqueue", json: info(index)).status == 202) }
            await rig.cluster.kill9(leader)
            let survivor = try await rig.leader(otherThan: leader)
            for index in 20..<30 { #expect(try await rig.nodes[survivor]!.postRetrying("/v2/enqueue", json: info(index)).status == 202) }
            for node in LocalCluster.nodes where node != leader {
                try await ClusterRig.waitUntil("node \(node) files every event as digested") {
                    var digested = 0
                    for key in 0..<4 { digested += await Self.folder(rig, node, "sensor-\(key)").counts["digested"] ?? 0 }
                    return digested == 30
                }
            }
            let delivered = try await rig.upstream.waitForAccepted(
                until: { $0.dedupKey?.hasPrefix("pdrelay-digest/") == true }, timeout: .seconds(120))
            let digests = delivered.filter { $0.dedupKey?.hasPrefix("pdrelay-digest/") == true }
            let details = (digests.last?.json?["payload"] as? [String: Any])?["custom_details"] as? [String: Any] ?? [:]
            #expect(details["events"] as? Int == 30, "every event taken before and after the kill is counted once")
            #expect(details["by_source"] as? [String: Int] == ["rtu-0": 15, "rtu-1": 15])
            #expect(!delivered.contains { $0.dedupKey?.hasPrefix("sensor-") == true }, "no info trigger went alone")
        }
    }

    @Test func budgetsAndLanesHoldAcrossAKill9OfTheLeader() async throws {
        // The default budget, a 500-ms slot. A slot is spent when an attempt's intent is proposed
        // and the request leaves once that commits, so slots shorter than a loaded cluster's commit
        // (a 100-ms slot was tried) let requests whose slots were spent before the critical
        // trigger existed arrive after it was posted, and blur what is measured.
        try await ClusterRig.run(extraSettings: ["delivery_budget_per_minute: 120"]) { rig in
            let routingKey = TestSupport.routingKey(21)
            let floodKeys = (0..<10).map { "telemetry-\($0)" }
            func info(_ index: Int) -> [UInt8] {
                TestSupport.alert(
                    routingKey: routingKey, dedupKey: floodKeys[index % floodKeys.count],
                    extra: ["payload": ["summary": "reading \(index)", "source": "sensor", "severity": "info"]])
            }
            let leader = try await rig.leader()
            // A patient client: beside the other suites, a commit can take longer than the rig's 2 s.
            let client = RelayClient(baseURL: rig.cluster.nodeURL(leader), timeoutMilliseconds: 10_000)
            defer { Task { try? await client.shutdown() } }
            for index in 0..<100 { #expect(try await client.postRetrying("/v2/enqueue", json: info(index)).status == 202) }
            try await ClusterRig.waitUntil("the flood under way") { await rig.upstream.deliveries.count >= 2 }
            await rig.cluster.kill9(leader)
            let survivor = try await rig.leader(otherThan: leader)
            let posted = ContinuousClock.now
            let critical = try await rig.nodes[survivor]!.post(
                "/v2/enqueue", json: TestSupport.alert(routingKey: routingKey, dedupKey: "substation-9", summary: "breaker tripped"))
            #expect(critical.status == 202)
            try await ClusterRig.waitUntil("the critical trigger delivered") {
                await rig.upstream.deliveries.contains { $0.dedupKey == "substation-9" }
            }
            let deliveries = await rig.upstream.deliveries
            let arrived = deliveries.first { $0.dedupKey == "substation-9" }!.arrivedAt
            let ahead = deliveries.filter { $0.arrivedAt > posted && $0.arrivedAt < arrived }.count
            #expect(ahead <= 1, "the critical trigger waited behind \(ahead) requests on the new leader")
            // Every reading's key ends with its last reading (queued ones may be coalesced).
            let last = Dictionary(uniqueKeysWithValues: (90..<100).map { (floodKeys[$0 % floodKeys.count], "reading \($0)") })
            try await ClusterRig.waitUntil("every key's last reading delivered") {
                let accepted = await rig.upstream.accepted
                return last.allSatisfy { key, summary in
                    accepted.contains { $0.dedupKey == key && (($0.json?["payload"] as? [String: Any])?["summary"] as? String) == summary }
                }
            }
            // Paced by the budget throughout: no second holds more than its two slots, plus one
            // that a new leader's fresh budget may add, plus one for arrival jitter.
            let times = await rig.upstream.deliveries.filter { $0.routingKey == routingKey }.map(\.arrivedAt).sorted()
            let busiest = times.indices.map { start in times[start...].prefix { $0 < times[start] + .seconds(1) }.count }.max() ?? 0
            #expect(busiest <= 4, "\(busiest) requests of one routing key within one second")
        }
    }
}
