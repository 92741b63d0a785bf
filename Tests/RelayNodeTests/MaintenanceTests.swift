import Foundation
import MockPagerDuty
import RelayClient
import RelayCore
import RelayTestSupport
import Testing

/// Maintenance windows through the HTTP API of one node, against the mock.
@Suite(RelayLoad.node) struct MaintenanceTests {
    static let token = "correct-horse-battery-staple"
    let routingKey = TestSupport.routingKey()
    let otherKey = TestSupport.routingKey(5)

    static func json(_ object: [String: Any]) -> [UInt8] { Array(try! JSONSerialization.data(withJSONObject: object)) }

    static func rfc3339(in milliseconds: Int64) -> String {
        MaintenanceWindowView.rfc3339(Int64(Date().timeIntervalSince1970 * 1_000) + milliseconds)
    }

    /// An event on another routing key, delivered: everything the node was going to send before
    /// it has been sent by then, since the node starts keys in acceptance order.
    static func marker(_ node: TestNode, _ name: String) async throws {
        #expect(try await node.send(TestSupport.alert(routingKey: TestSupport.routingKey(9), dedupKey: name)).status == 202)
        _ = try await node.upstream.waitForAccepted(until: { $0.dedupKey == name })
    }

    @Test func eventsInsideAWindowAreAcceptedButNotDeliveredExceptTheResolveOfAnOlderIncident() async throws {
        try await TestNode.run(configure: { $0.adminToken = Self.token }) { node in
            try await node.send(TestSupport.alert(dedupKey: "before", summary: "link down"))
            _ = try await node.upstream.waitForAccepted(until: { $0.dedupKey == "before" })
            let created = try await node.client.post(
                "/v1/maintenance-windows",
                json: Self.json(["routing_keys": [routingKey], "duration_minutes": 30, "reason": "switch firmware upgrade"]))
            #expect(created.status == 201, "\(created.text)")
            #expect(created.json?["state"] as? String == "active")
            let id = created.json?["id"] as? Int ?? 0

            let inside = try await node.send(TestSupport.alert(dedupKey: "inside", summary: "port flapping"))
            #expect(inside.status == 202 && inside.json?["dedup_key"] as? String == "inside")
            #expect(try await node.send(TestSupport.alert("resolve", dedupKey: "before")).status == 202)
            #expect(try await node.send(TestSupport.alert(routingKey: otherKey, dedupKey: "elsewhere")).status == 202)
            try await Self.marker(node, "marker-1")
            let delivered = await node.upstream.accepted.map { "\($0.dedupKey ?? ""):\($0.action ?? "")" }
            #expect(delivered.contains("before:resolve"), "the resolve of an incident opened before the window goes through")
            #expect(delivered.contains("elsewhere:trigger"), "another routing key is not in the window")
            #expect(!delivered.contains("inside:trigger"))

            let folder = try await node.client.get("/v1/incidents/inside").json ?? [:]
            #expect(IncidentTests.outcomes(folder) == ["maintenance_suppressed"])
            let list = try await node.client.get("/v1/maintenance-windows").json?["windows"] as? [[String: Any]] ?? []
            #expect(list.first?["suppressed"] as? Int == 1)
            #expect((list.first?["routing_keys"] as? [String])?.first?.contains(routingKey) == false, "routing keys are masked")

            // Ended: the next trigger goes.
            let ended = try await node.client.delete("/v1/maintenance-windows/\(id)")
            #expect(ended.status == 200)
            #expect((ended.json?["window"] as? [String: Any])?["state"] as? String == "ended")
            try await node.send(TestSupport.alert(dedupKey: "inside", summary: "port flapping", extra: ["client": "after"]))
            _ = try await node.upstream.waitForAccepted(until: { $0.dedupKey == "inside" })
        }
    }

    @Test func heldEventsAreDeliveredAfterTheWindowInOrder() async throws {
        try await TestNode.run(configure: { $0.adminToken = Self.token }) { node in
            // An hour long, so that nothing depends on how fast the events are sent; it is then
            // moved to end a second from now, and released by the node at that end.
            let created = try await node.client.post(
                "/v1/maintenance-windows",
                json: Self.json(["source_pattern": "plc-*", "duration_minutes": 60, "reason": "PLC maintenance", "hold": true]))
            #expect(created.status == 201, "\(created.text)")
            let id = created.json?["id"] as? Int ?? 0
            func trigger(_ key: String, _ summary: String) -> [UInt8] {
                TestSupport.alert(dedupKey: key, extra: ["payload": ["summary": summary, "source": "plc-7", "severity": "error"]])
            }
            for body in [
                trigger("pump-1", "pressure low"), trigger("pump-2", "pressure low"), trigger("pump-1", "pressure very low"),
                TestSupport.alert("resolve", dedupKey: "pump-1"),
            ] {
                #expect(try await node.send(body).status == 202)
            }
            try await Self.marker(node, "marker-1")
            let windows = try await node.client.get("/v1/maintenance-windows").json?["windows"] as? [[String: Any]] ?? []
            #expect(windows.first?["holding"] as? Int == 4)
            #expect(await node.upstream.accepted.allSatisfy { $0.dedupKey?.hasPrefix("pump") != true })

            // A second ahead, or more when a starved process took longer than that to ask: an end
            // already past is refused, and the refusal changes nothing.
            var (wallStart, monotonicStart) = (Int64(0), ContinuousClock.now)
            var answer: RelayResponse?
            for aheadMilliseconds: Int64 in [1_000, 2_000, 4_000, 8_000] {
                (wallStart, monotonicStart) = (Int64(Date().timeIntervalSince1970 * 1_000), ContinuousClock.now)
                answer = try await node.client.patch(
                    "/v1/maintenance-windows/\(id)", json: Self.json(["end": Self.rfc3339(in: aheadMilliseconds)]))
                if answer?.text.contains("end must be in the future") != true { break }
            }
            let moved = try #require(answer)
            #expect(moved.status == 200, "\(moved.text)")
            #expect(moved.json?["holding"] as? Int == 4, "a change that keeps hold keeps what the window holds")
            // The window's end on the mock's clock, which records when each request arrived.
            let endInstant = monotonicStart + .milliseconds((moved.json?["ends_at_milliseconds"] as? Int64 ?? 0) - wallStart)

            let delivered = try await node.upstream.waitForAccepted(until: { $0.dedupKey == "pump-1" && $0.action == "resolve" })
            let pumps = delivered.filter { $0.dedupKey?.hasPrefix("pump") == true }
            #expect(pumps.allSatisfy { $0.arrivedAt >= endInstant }, "nothing held went before the window's end")
            func summaries(_ key: String) -> [String] {
                IncidentTests.collapsed(
                    pumps.filter { $0.dedupKey == key }.map {
                        "\($0.action!):\((($0.json?["payload"] as? [String: Any])?["summary"] as? String) ?? "")"
                    })
            }
            #expect(summaries("pump-1") == ["trigger:pressure low", "trigger:pressure very low", "resolve:"])
            #expect(summaries("pump-2") == ["trigger:pressure low"])
            let folder = try await IncidentTests.waitForFolder(node.client, "pump-1") { IncidentTests.outcomes($0).last == "delivered" }
            #expect(IncidentTests.outcomes(folder) == ["delivered", "delivered", "delivered"])
        }
    }

    @Test func badWindowsGetAClearErrorAndChangeNothing() async throws {
        try await TestNode.run(configure: { $0.adminToken = Self.token }) { node in
            let cases: [([String: Any], String)] = [
                (["duration_minutes": 10, "reason": "x"], "silence everything"),
                (["routing_keys": [routingKey], "reason": "x"], "either an end"),
                (["routing_keys": [routingKey], "duration_minutes": 10], "needs a reason"),
                (["routing_keys": [routingKey], "end": "tomorrow", "reason": "x"], "RFC 3339"),
                (["routing_keys": [routingKey], "end": Self.rfc3339(in: -60_000), "reason": "x"], "end must be in the future"),
                (["routing_keys": [routingKey], "duration_minutes": 10, "reason": "x", "colour": "red"], "Unknown field 'colour'"),
                (["routing_keys": [routingKey], "duration_minutes": 100_000, "reason": "x"], "duration_minutes must be"),
                (["source_pattern": "", "duration_minutes": 10, "reason": "x"], "source_pattern must be"),
            ]
            for (body, message) in cases {
                let refused = try await node.client.post("/v1/maintenance-windows", json: Self.json(body))
                #expect(refused.status == 400, "\(body)")
                #expect(refused.text.contains(message), "\(body): \(refused.text)")
            }
            #expect(try await node.client.delete("/v1/maintenance-windows/7").status == 404)
            let anonymous = RelayClient(baseURL: node.client.baseURL)
            let unauthorised = try await anonymous.post(
                "/v1/maintenance-windows", json: Self.json(["routing_keys": [routingKey], "duration_minutes": 10, "reason": "x"]))
            try await anonymous.shutdown()
            #expect(unauthorised.status == 401)
            let list = try await node.client.get("/v1/maintenance-windows").json?["windows"] as? [[String: Any]]
            #expect(list?.isEmpty == true, "no refused request made a window")
        }
    }

    @Test func aWindowCanBeExtendedButNotAfterItEnded() async throws {
        try await TestNode.run(configure: { $0.adminToken = Self.token }) { node in
            let created = try await node.client.post(
                "/v1/maintenance-windows", json: Self.json(["routing_keys": [routingKey], "duration_minutes": 10, "reason": "x"]))
            let id = created.json?["id"] as? Int ?? 0
            let later = Self.rfc3339(in: 3_600_000)
            let extended = try await node.client.patch("/v1/maintenance-windows/\(id)", json: Self.json(["end": later]))
            #expect(extended.status == 200, "\(extended.text)")
            #expect(extended.json?["ends_at_milliseconds"] as? Int64 == MaintenanceWindowView.milliseconds(rfc3339: later))
            #expect(try await node.client.delete("/v1/maintenance-windows/\(id)").status == 200)
            let refused = try await node.client.patch("/v1/maintenance-windows/\(id)", json: Self.json(["end": later]))
            #expect(refused.status == 409)
        }
    }
}
