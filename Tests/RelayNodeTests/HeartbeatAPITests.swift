import Foundation
import MockPagerDuty
import RelayClient
import RelayTestSupport
import Testing

/// Heartbeats through the HTTP API of one node, against the mock.
@Suite(RelayLoad.node) struct HeartbeatAPITests {
    static let token = "correct-horse-battery-staple"
    let routingKey = TestSupport.routingKey()

    static func json(_ object: [String: Any]) -> [UInt8] { Array(try! JSONSerialization.data(withJSONObject: object)) }

    @Test func aMissedCheckInTriggersAndTheNextResolves() async throws {
        try await TestNode.run(configure: { $0.adminToken = Self.token }) { node in
            let created = try await node.client.put(
                "/v1/heartbeats/nightly-backup",
                json: Self.json(["routing_key": routingKey, "interval_seconds": 10, "grace_seconds": 0, "source": "backup-01"]))
            #expect(created.status == 200, "\(created.text)")
            #expect(created.json?["state"] as? String == "waiting")
            let anonymous = RelayClient(baseURL: node.client.baseURL)
            let checkIn = Self.json(["routing_key": routingKey, "interval_seconds": 10])
            // Taken before it is sent: the node applies it somewhere between then and its answer.
            let checkedIn = ContinuousClock.now
            let first = try await anonymous.post("/v1/heartbeats/nightly-backup", json: checkIn)
            #expect(first.status == 200 && first.json?["state"] as? String == "up", "\(first.text)")

            let trigger = try await node.upstream.waitForAccepted(
                until: { $0.dedupKey == "pdrelay-heartbeat/nightly-backup" }, timeout: .seconds(40))
            let alarm = try #require(trigger.last)
            #expect(alarm.action == "trigger")
            #expect(alarm.arrivedAt - checkedIn >= .seconds(10), "not before the interval ran out")
            let payload = alarm.json?["payload"] as? [String: Any]
            #expect((payload?["summary"] as? String)?.hasPrefix("Heartbeat nightly-backup missed") == true)
            #expect(payload?["source"] as? String == "backup-01" && payload?["severity"] as? String == "critical")
            let missed = try await node.client.get("/v1/heartbeats/nightly-backup")
            #expect(missed.json?["state"] as? String == "missed")

            #expect(try await anonymous.post("/v1/heartbeats/nightly-backup", json: checkIn).status == 200)
            _ = try await node.upstream.waitForAccepted(until: {
                $0.dedupKey == "pdrelay-heartbeat/nightly-backup" && $0.action == "resolve"
            })
            try await anonymous.shutdown()
        }
    }

    @Test func checkInsNeedTheRightRoutingKeyAndChangesNeedTheAdminToken() async throws {
        try await TestNode.run(configure: { $0.adminToken = Self.token }) { node in
            let anonymous = RelayClient(baseURL: node.client.baseURL)
            let spec = Self.json(["routing_key": routingKey, "interval_seconds": 60])
            #expect(try await anonymous.put("/v1/heartbeats/job", json: spec).status == 401, "creating needs the token")
            #expect(try await anonymous.post("/v1/heartbeats/job", json: Self.json(["routing_key": routingKey])).status == 404)
            #expect(try await node.client.put("/v1/heartbeats/job", json: spec).status == 200)
            let cases: [([String: Any], Int, String)] = [
                (["routing_key": TestSupport.routingKey(3)], 403, "not heartbeat job's"),
                (["routing_key": routingKey, "interval_seconds": 30], 409, "expects a check-in every 60 s"),
                (["interval_seconds": 60], 400, "carries the heartbeat's routing_key"),
                (["routing_key": routingKey, "colour": "red"], 400, "Unknown field 'colour'"),
            ]
            for (body, status, message) in cases {
                let refused = try await anonymous.post("/v1/heartbeats/job", json: Self.json(body))
                #expect(refused.status == status, "\(body)")
                #expect(refused.text.contains(message), "\(body): \(refused.text)")
            }
            #expect(try await node.client.get("/v1/heartbeats/job").json?["check_ins"] as? Int == 0, "no refusal changed anything")
            #expect(try await anonymous.delete("/v1/heartbeats/job").status == 401)
            let bad = try await node.client.put("/v1/heartbeats/job", json: Self.json(["routing_key": routingKey, "interval_seconds": 1]))
            #expect(bad.status == 400 && bad.text.contains("interval_seconds must be 10-"))
            #expect(try await node.client.delete("/v1/heartbeats/job").status == 200)
            try await anonymous.shutdown()
        }
    }
}
