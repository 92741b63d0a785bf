import Foundation
import MockPagerDuty
import RelayClient
import RelayTestSupport
import Testing

/// The relay answers exactly as PagerDuty's Events API does: same status codes, same bodies.
@Suite(RelayLoad.node) struct IngestTests {
    /// Checks a body against a response schema of PagerDuty's OpenAPI file: required fields
    /// present, and every field the schema describes of the type it says.
    func checkAgainstOpenAPI(_ body: [UInt8], response name: String) throws {
        let spec = try #require(TestSupport.json(try TestSupport.fixtureBytes("pagerduty-events-v2.openapi.json")))
        let responses = try #require((spec["components"] as? [String: Any])?["responses"] as? [String: Any])
        let content = try #require(
            ((responses[name] as? [String: Any])?["content"] as? [String: Any])?["application/json"] as? [String: Any])
        let schema = try #require(content["schema"] as? [String: Any])
        let json = try #require(TestSupport.json(body), "not a JSON object: \(String(decoding: body, as: UTF8.self))")
        for field in schema["required"] as? [String] ?? [] { #expect(json[field] != nil, "missing required '\(field)'") }
        for (field, property) in schema["properties"] as? [String: [String: Any]] ?? [:] {
            guard let value = json[field] else { continue }
            switch property["type"] as? String {
            case "string": #expect(value is String, "'\(field)' should be a string")
            case "array": #expect((value as? [Any])?.allSatisfy { $0 is String } == true, "'\(field)' should be an array of strings")
            default: break
            }
        }
    }

    @Test func alertmanagerEventsAreAcceptedWithPagerDutysSuccessBody() async throws {
        try await TestNode.run { node in
            for name in ["trigger", "resolve"] {
                let response = try await node.send(try TestSupport.fixtureBytes("clients/alertmanager-0.25/\(name).body.json"))
                #expect(response.status == 202)
                try checkAgainstOpenAPI(response.body, response: "Success")
                #expect(response.json?["status"] as? String == "success")
                #expect(response.json?["message"] as? String == "Event processed")
                #expect(response.json?["dedup_key"] as? String == "16489ac53e15464b8136490544d119fc06addd0477e5a4cb082743404aac8857")
            }
        }
    }

    @Test func invalidEventsGetPagerDutysErrorBody() async throws {
        try await TestNode.run { node in
            let response = try await node.send(TestSupport.alert(extra: ["payload": ["summary": "s", "source": "x", "severity": "fatal"]]))
            #expect(response.status == 400)
            try checkAgainstOpenAPI(response.body, response: "Error")
            #expect(response.json?["status"] as? String == "invalid event")
            #expect(response.json?["message"] as? String == "Event object is invalid")
            #expect(
                response.json?["errors"] as? [String] == ["'payload.severity' is invalid (must be one of critical, error, warning, info)"])
            let malformed = try await node.client.post("/v2/enqueue", json: Array("{\"routing_key\":".utf8))
            #expect(malformed.status == 400)
            try checkAgainstOpenAPI(malformed.body, response: "Error")
            #expect(malformed.json?["errors"] as? [String] == ["JSON parse error"])
        }
    }

    @Test func resolveAndAcknowledgeAnswersCarryTheDedupKey() async throws {
        try await TestNode.run { node in
            for action in ["acknowledge", "resolve"] {
                let response = try await node.send(TestSupport.alert(action, dedupKey: "db-1"))
                #expect(response.status == 202)
                #expect(response.json?["dedup_key"] as? String == "db-1")
            }
        }
    }

    @Test func aTriggerWithoutDedupKeyIsGivenOneThatIsAlsoSentUpstream() async throws {
        try await TestNode.run { node in
            let response = try await node.send(TestSupport.alert(summary: "keyless"))
            let key = try #require(response.json?["dedup_key"] as? String)
            #expect(key.count == 32)
            // A client retry of the same bytes is the same incident, not a new one.
            let retry = try await node.send(TestSupport.alert(summary: "keyless"))
            #expect(retry.json?["dedup_key"] as? String == key)
            // A resolve of the same incident is the marker: a key's events go out in order, so a
            // second incident's trigger would have gone out before it. (A copy of the same bytes
            // may, if an answer was slower than the upstream timeout: delivery is at least once.)
            _ = try await node.send(TestSupport.alert("resolve", dedupKey: key))
            let delivered = try await node.upstream.waitForAccepted(until: { $0.action == "resolve" })
            #expect(delivered.map(\.dedupKey).allSatisfy { $0 == key })
            #expect(Set(delivered.filter { $0.action == "trigger" }.map(\.body)).count == 1, "one trigger, perhaps sent again")
        }
    }

    @Test func aKeylessTriggerGetsItsRoutingKeysTemplatedKeySoRepeatsShareAnIncident() async throws {
        try await TestNode.run(configure: { $0.dedupKeyTemplateTexts = ["*": "{source}/{class}"] }) { node in
            func trigger(_ summary: String, source: String) -> [UInt8] {
                TestSupport.alert(extra: ["payload": ["summary": summary, "source": source, "severity": "error", "class": "disk"]])
            }
            let first = try await node.send(trigger("disk 91% full", source: "db-1"))
            let again = try await node.send(trigger("disk 97% full", source: "db-1"))
            let other = try await node.send(trigger("disk 91% full", source: "db-2"))
            #expect([first, again, other].map(\.status) == [202, 202, 202])
            #expect(first.json?["dedup_key"] as? String == "db-1/disk")
            #expect(again.json?["dedup_key"] as? String == "db-1/disk")
            #expect(other.json?["dedup_key"] as? String == "db-2/disk")
            // Without the class field the template cannot render: a random key, as before.
            let unrendered = try await node.send(TestSupport.alert(summary: "no class"))
            let randomKey = try #require(unrendered.json?["dedup_key"] as? String)
            #expect(randomKey.count == 32)
            // The client resolves by the key it was told; that resolve is the marker for order.
            _ = try await node.send(TestSupport.alert("resolve", dedupKey: "db-1/disk"))
            let db1 = try await node.upstream.waitForAccepted(until: { $0.action == "resolve" }).filter { $0.dedupKey == "db-1/disk" }
            // The first trigger may have been coalesced into the second while queued, and a slow
            // answer may have made a copy; either way the incident's last trigger is the second.
            let summaries = db1.filter { $0.action == "trigger" }.map { ($0.json?["payload"] as? [String: Any])?["summary"] as? String }
            #expect(summaries.last == "disk 97% full")
            #expect(Set(summaries).isSubset(of: ["disk 91% full", "disk 97% full"]))
            #expect(db1.last?.action == "resolve")
        }
    }

    @Test func v1EventsGetV1AnswersAndGoUpstreamAsV2() async throws {
        try await TestNode.run { node in
            let v1 =
                #"{"service_key":"\#(TestSupport.routingKey())","event_type":"trigger","description":"PLC 7 offline","incident_key":"plc-7","client":"zabbix"}"#
            let response = try await node.send(Array(v1.utf8), path: "/generic/2010-04-15/create_event.json")
            #expect(response.status == 200)
            #expect(response.json?["incident_key"] as? String == "plc-7")
            #expect(response.json?["status"] as? String == "success")
            let delivered = try await node.upstream.waitForAccepted(1)
            #expect(delivered.first?.path == "/v2/enqueue")
            #expect(delivered.first?.validationErrors == [])
            #expect((delivered.first?.json?["payload"] as? [String: Any])?["summary"] as? String == "PLC 7 offline")
        }
    }

    @Test func changeEventsGoToTheChangeEndpoint() async throws {
        try await TestNode.run { node in
            let change = #"{"routing_key":"\#(TestSupport.routingKey())","payload":{"summary":"deployed v42","source":"ci"}}"#
            let response = try await node.send(Array(change.utf8), path: "/v2/change/enqueue")
            #expect(response.status == 202)
            #expect(response.json?["message"] as? String == "Change event processed")
            let delivered = try await node.upstream.waitForAccepted(1)
            #expect(delivered.first?.path == "/v2/change/enqueue")
            #expect(delivered.first?.body == Array(change.utf8))
        }
    }

    @Test func badRequestsGetClearErrorsAndTheNodeKeepsWorking() async throws {
        try await TestNode.run(configure: { $0.maxEventBytes = 4_096 }) { node in
            let form = try await node.client.post(
                "/v2/enqueue", json: TestSupport.alert(), contentType: "application/x-www-form-urlencoded")
            #expect(form.status == 415)
            #expect((form.json?["errors"] as? [String])?.first?.contains("Content-Type must be application/json") == true)
            let huge = try await node.send(TestSupport.alert(summary: String(repeating: "x", count: 5_000)))
            #expect(huge.status == 413)
            #expect(huge.json?["errors"] as? [String] == ["Event is larger than the limit of 4096 bytes"])
            let badUTF8 = try await node.send([0x7B, 0x22, 0xC3, 0x28, 0x22, 0x3A, 0x31, 0x7D])
            #expect(badUTF8.status == 400)
            #expect(badUTF8.json?["errors"] as? [String] == ["JSON parse error"])
            let unknown = try await node.client.post("/v3/enqueue", json: TestSupport.alert())
            #expect(unknown.status == 404)
            #expect(unknown.json?["message"] as? String == "No such endpoint: POST /v3/enqueue")
            let wrongMethod = try await node.client.get("/v2/enqueue")
            #expect([404, 405].contains(wrongMethod.status))
            #expect(wrongMethod.json != nil)
            #expect(try await node.send(TestSupport.alert()).status == 202)
        }
    }

    @Test func healthReadinessAndMetrics() async throws {
        try await TestNode.run { node in
            #expect(try await node.client.get("/healthz").status == 200)
            let ready = try await node.client.get("/readyz")
            #expect(ready.status == 200)
            #expect(ready.json?["status"] as? String == "ready")
            try await node.send(TestSupport.alert(dedupKey: "m"))
            try await node.send(TestSupport.alert(extra: ["event_action": "nope"]))
            _ = try await node.upstream.waitForAccepted(1)
            // The queue gauge moves once the delivery's outcome is committed, a moment after the
            // upstream answered: wait for it rather than for a fixed time.
            var metrics = try await node.client.get("/metrics").text
            let deadline = ContinuousClock.now + .seconds(30)
            while !metrics.contains(#"pdrelay_queue_depth{state="pending"} 0"#), ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
                metrics = try await node.client.get("/metrics").text
            }
            #expect(metrics.contains(#"pdrelay_events_accepted_total{api="v2_enqueue",result="queued"} 1"#))
            #expect(metrics.contains(#"pdrelay_events_rejected_total{reason="invalid_event"} 1"#))
            #expect(metrics.contains("pdrelay_events_delivered_total 1"))
            #expect(metrics.contains(#"pdrelay_upstream_responses_total{code="202"} 1"#))
            #expect(metrics.contains(#"pdrelay_queue_depth{state="pending"} 0"#))
            #expect(metrics.contains("pdrelay_delivery_latency_seconds_bucket"))
        }
    }

    @Test func readinessFailsAboveTheHighWaterMark() async throws {
        let upstream = MockPagerDuty()
        try await upstream.start()
        await upstream.setDefaultReply(.status(500))
        try await TestNode.run(configure: { $0.queueHighWaterEvents = 2 }, upstream: upstream) { node in
            try await node.send(TestSupport.alert(dedupKey: "a"))
            #expect(try await node.client.get("/readyz").status == 200)
            try await node.send(TestSupport.alert(dedupKey: "b"))
            let notReady = try await node.client.get("/readyz")
            #expect(notReady.status == 503)
            #expect(notReady.text.contains("high-water mark of 2"))
        }
    }

    @Test func changingStateNeedsTheAdminTokenEvenOnLoopbackAndARefusalChangesNothing() async throws {
        let upstream = MockPagerDuty()
        try await upstream.start()
        await upstream.setDefaultReply(.status(400))
        let token = "correct-horse-battery-staple"
        try await TestNode.run(configure: { $0.adminToken = nil }, upstream: upstream) { node in
            try await node.send(TestSupport.alert(dedupKey: "rejected"))
            _ = try await Self.waitForDead(node.client, count: 1)
            #expect(try await node.client.get("/v1/queue/status").status == 200, "reads stay open on a loopback node without a token")
            for path in ["/v1/queue/retry", "/v1/queue/purge"] {
                let refused = try await node.client.post(path, json: Array("{}".utf8))
                #expect(refused.status == 401, "\(path)")
                #expect((refused.json?["message"] as? String)?.contains("set admin_token") == true, "\(path)")
            }
            #expect(try await Self.waitForDead(node.client, count: 1) == 1, "a refused request changed nothing")
        }
        try await TestNode.run(configure: { $0.adminToken = token }, upstream: upstream) { node in
            try await node.send(TestSupport.alert(dedupKey: "rejected"))
            _ = try await Self.waitForDead(node.client, count: 1)
            for presented in [nil, "wrong-token-wrong-token", token + "x", String(token.dropLast())] {
                let client = RelayClient(baseURL: node.client.baseURL, adminToken: presented)
                let refused = try await client.post("/v1/queue/purge", json: Array("{}".utf8))
                try await client.shutdown()
                #expect(refused.status == 401)
            }
            #expect(try await Self.waitForDead(node.client, count: 1) == 1, "a refused request changed nothing")
            #expect(try await node.client.post("/v1/queue/purge", json: Array("{}".utf8)).status == 200)
        }
        await upstream.stop()
    }

    /// Waits until the queue holds `count` dead events; returns how many it holds.
    static func waitForDead(_ client: RelayClient, count: Int) async throws -> Int {
        let deadline = ContinuousClock.now + .seconds(60)
        while true {
            let status = try await client.get("/v1/queue/status").json
            let dead = status?["dead"] as? Int ?? 0
            if dead >= count || ContinuousClock.now > deadline { return dead }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    @Test func theQueueAPINeedsTheAdminTokenWhenOneIsSet() async throws {
        try await TestNode.run(configure: { $0.adminToken = "correct-horse-battery-staple" }) { node in
            #expect(try await node.client.get("/v1/queue/status").status == 200)
            let anonymous = RelayClient(baseURL: node.client.baseURL)
            let refused = try await anonymous.get("/v1/queue/status")
            try await anonymous.shutdown()
            #expect(refused.status == 401)
            #expect(refused.json?["message"] as? String == "The queue API needs Authorization: Bearer <admin_token>")
        }
    }
}
