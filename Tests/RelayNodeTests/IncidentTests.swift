import Foundation
import MockPagerDuty
import RelayClient
import RelayTestSupport
import Testing

/// Incident folders and repeat suppression through the HTTP API of one node, against the mock.
@Suite(RelayLoad.node) struct IncidentTests {
    /// Polls `GET /v1/incidents/{dedupKey}` until `condition` holds; returns the last answer.
    static func waitForFolder(
        _ client: RelayClient, _ dedupKey: String, timeout: Duration = .seconds(30), until condition: ([String: Any]) -> Bool
    ) async throws -> [String: Any] {
        let deadline = ContinuousClock.now + timeout
        while true {
            let folder = try await client.get("/v1/incidents/\(dedupKey)").json ?? [:]
            if condition(folder) || ContinuousClock.now > deadline { return folder }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Consecutive repeats collapsed: a request that timed out on a loaded machine is sent
    /// again (at least once), but never after the key's next event.
    static func collapsed(_ items: [String]) -> [String] {
        items.reduce(into: []) { result, item in if result.last != item { result.append(item) } }
    }

    static func outcomes(_ folder: [String: Any]) -> [String] {
        (folder["history"] as? [[String: Any]] ?? []).compactMap { $0["outcome"] as? String }
    }

    @Test func aFolderShowsTheProgressionAndARepeatIsRecordedButNotForwarded() async throws {
        try await TestNode.run { node in
            let trigger = TestSupport.alert(dedupKey: "db-1", summary: "disk full on db-1")
            #expect(try await node.send(trigger).status == 202)
            _ = try await node.upstream.waitForAccepted(1)
            // Other bytes (a timestamp), so not a client retry; the same severity and summary.
            let repeated = TestSupport.alert(dedupKey: "db-1", summary: "disk full on db-1", extra: ["client": "cron 02:00"])
            let answer = try await node.send(repeated)
            #expect(answer.status == 202)
            #expect(answer.json?["dedup_key"] as? String == "db-1")
            try await node.send(TestSupport.alert("acknowledge", dedupKey: "db-1"))
            try await node.send(TestSupport.alert("resolve", dedupKey: "db-1"))
            let delivered = try await node.upstream.waitForAccepted(until: { $0.action == "resolve" })
            // The repeat was not forwarded: the resolve, sent after it, arrived behind only the
            // first trigger and the acknowledge.
            #expect(Self.collapsed(delivered.map { $0.action ?? "" }) == ["trigger", "acknowledge", "resolve"])
            #expect(!delivered.contains { $0.json?["client"] as? String == "cron 02:00" })

            let folder = try await Self.waitForFolder(node.client, "db-1") { Self.outcomes($0).last == "delivered" }
            let incident = folder["incident"] as? [String: Any] ?? [:]
            #expect(incident["state"] as? String == "resolved")
            #expect(incident["source"] as? String == "db-1")
            #expect(incident["summary"] as? String == "disk full on db-1")
            #expect(incident["severity"] as? String == "critical")
            let counts = incident["counts"] as? [String: Int] ?? [:]
            #expect(
                counts == [
                    "triggers": 1, "acknowledges": 1, "resolves": 1, "repeats_suppressed": 1, "maintenance_suppressed": 0, "held": 0,
                    "digested": 0,
                ])
            #expect(Self.outcomes(folder) == ["delivered", "repeat_suppressed", "delivered", "delivered"])
            let history = folder["history"] as? [[String: Any]] ?? []
            #expect(history.compactMap { $0["action"] as? String } == ["trigger", "trigger", "acknowledge", "resolve"])
            #expect((incident["routing_key"] as? String)?.contains(TestSupport.routingKey()) == false, "routing keys are masked")

            // After the resolve, the same trigger opens a new incident and is forwarded.
            let before = await node.upstream.accepted.count
            try await node.send(trigger)
            _ = try await node.upstream.waitForAccepted(before + 1)
        }
    }

    @Test func listsFilterByStateRoutingKeyAndSourceAndPageWithACursor() async throws {
        try await TestNode.run { node in
            let other = TestSupport.routingKey(2)
            for index in 0..<5 {
                try await node.send(TestSupport.alert(dedupKey: "web-\(index)", summary: "web \(index) down"))
            }
            try await node.send(TestSupport.alert(routingKey: other, dedupKey: "db-9", summary: "db down"))
            try await node.send(TestSupport.alert("resolve", dedupKey: "web-0"))
            _ = try await node.upstream.waitForAccepted(7)

            func keys(_ query: String) async throws -> (keys: [String], cursor: String?) {
                let page = try await node.client.get("/v1/incidents\(query)").json ?? [:]
                let incidents = page["incidents"] as? [[String: Any]] ?? []
                return (incidents.compactMap { $0["dedup_key"] as? String }, page["next_cursor"] as? String)
            }
            #expect(try await keys("?state=open").keys == ["db-9", "web-4", "web-3", "web-2", "web-1"])
            #expect(try await keys("?state=resolved").keys == ["web-0"])
            #expect(try await keys("?state=open,resolved&routing_key=\(other)").keys == ["db-9"])
            #expect(try await keys("?source=db-1").keys.count == 6, "TestSupport's triggers name source db-1")
            #expect(try await keys("?source=nowhere").keys.isEmpty)

            var seen: [String] = []
            var cursor: String? = nil
            repeat {
                let page = try await keys("?limit=2" + (cursor.map { "&cursor=\($0)" } ?? ""))
                #expect(page.keys.count <= 2)
                seen += page.keys
                cursor = page.cursor
            } while cursor != nil && seen.count < 20
            #expect(seen == ["web-0", "db-9", "web-4", "web-3", "web-2", "web-1"])
        }
    }

    @Test func badQueriesGetAClearErrorAndAnUnknownKeyA404() async throws {
        try await TestNode.run { node in
            try await node.send(TestSupport.alert(dedupKey: "db-1"))
            for (query, message) in [
                ("?state=bogus", "state must be open, acknowledged or resolved"), ("?limit=0", "limit must be 1-1000"),
                ("?limit=5000", "limit must be 1-1000"), ("?cursor=abc", "cursor must be a next_cursor"),
                ("?colour=red", "Unknown parameter 'colour'"),
            ] {
                let refused = try await node.client.get("/v1/incidents\(query)")
                #expect(refused.status == 400, "\(query)")
                #expect(refused.text.contains(message), "\(query): \(refused.text)")
            }
            let missing = try await node.client.get("/v1/incidents/no-such-key")
            #expect(missing.status == 404)
            #expect(missing.text.contains("No incident folder for dedup_key 'no-such-key'"))
        }
    }

    @Test func aDedupKeyUnderTwoRoutingKeysNeedsTheRoutingKey() async throws {
        try await TestNode.run { node in
            try await node.send(TestSupport.alert(dedupKey: "shared"))
            try await node.send(TestSupport.alert(routingKey: TestSupport.routingKey(2), dedupKey: "shared"))
            let ambiguous = try await node.client.get("/v1/incidents/shared")
            #expect(ambiguous.status == 409)
            #expect(ambiguous.text.contains("add ?routing_key="))
            let one = try await node.client.get("/v1/incidents/shared?routing_key=\(TestSupport.routingKey(2))")
            #expect(one.status == 200)
        }
    }

    @Test func aKeyWithASlashIsFoundWithTheSlashAsItIsOrEncoded() async throws {
        try await TestNode.run { node in
            try await node.send(TestSupport.alert(dedupKey: "plc-7/pump 2"))
            for path in ["/v1/incidents/plc-7/pump%202", "/v1/incidents/plc-7%2Fpump%202"] {
                let folder = try await node.client.get(path)
                #expect(folder.status == 200, "\(path)")
                #expect((folder.json?["incident"] as? [String: Any])?["dedup_key"] as? String == "plc-7/pump 2", "\(path)")
            }
        }
    }

    @Test func foldersNeedTheAdminTokenWhenOneIsSet() async throws {
        try await TestNode.run(configure: { $0.adminToken = "correct-horse-battery-staple" }) { node in
            try await node.send(TestSupport.alert(dedupKey: "db-1"))
            #expect(try await node.client.get("/v1/incidents").status == 200)
            let anonymous = RelayClient(baseURL: node.client.baseURL)
            let list = try await anonymous.get("/v1/incidents")
            let one = try await anonymous.get("/v1/incidents/db-1")
            try await anonymous.shutdown()
            #expect(list.status == 401 && one.status == 401)
        }
    }
}
