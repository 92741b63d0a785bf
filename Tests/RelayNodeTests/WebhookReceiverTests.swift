import Crypto
import Foundation
import MockPagerDuty
import RelayClient
import RelayCore
import RelayTestSupport
import Testing

@testable import RelayNode

/// `POST /v1/webhooks/pagerduty` on one node: signed as PagerDuty documents it (hex HMAC-SHA256
/// of the raw body, made here with swift-crypto directly, not with the relay's own
/// `WebhookSignature`), from an allowed and then a refused address.
@Suite(RelayLoad.node) struct WebhookReceiverTests {
    static let secret = "whsec-0123456789abcdef0123456789abcdef"

    static func webhook(_ type: String, key: String, id: String, by: String = "Ada Operator", occurredIn milliseconds: Int64 = 0) -> [UInt8]
    {
        let occurred = MaintenanceWindowView.rfc3339(Int64(Date().timeIntervalSince1970 * 1_000) + milliseconds)
        let event: [String: Any] = [
            "event": [
                "id": id, "event_type": type, "resource_type": "incident", "occurred_at": occurred,
                "agent": ["id": "PUSER1", "summary": by, "type": "user_reference"], "client": NSNull(),
                "data": ["id": "Q\(id)", "type": "incident", "incident_key": key, "status": "resolved", "title": "pump"],
            ]
        ]
        return Array(try! JSONSerialization.data(withJSONObject: event, options: [.sortedKeys]))
    }

    static func sign(_ body: [UInt8], secret: String = secret) -> String {
        let code = HMAC<SHA256>.authenticationCode(for: body, using: SymmetricKey(data: Array(secret.utf8)))
        return "v1=" + code.map { String(format: "%02x", $0) }.joined()
    }

    static func post(_ node: TestNode, _ body: [UInt8], id: String, signature: String? = nil) async throws -> RelayResponse {
        try await node.client.post(
            "/v1/webhooks/pagerduty", json: body, headers: [("X-PagerDuty-Signature", signature ?? sign(body)), ("X-Webhook-Id", id)])
    }

    @Test func aResolveByAPersonIsRecordedAndTheNextTriggerIsForwardedNotHeldAsARepeat() async throws {
        let networks = TestSupport.temporaryDirectory("webhook") + "/networks.txt"
        try "# PagerDuty US webhooks, and this test's own client\n127.0.0.1/32\n::1\n".write(
            toFile: networks, atomically: true, encoding: .utf8)
        try await TestNode.run(configure: {
            $0.webhookSecret = Self.secret
            $0.webhookAllowedNetworksFile = networks
        }) { node in
            let trigger = TestSupport.alert(dedupKey: "pump-7", summary: "pump 7 pressure low")
            #expect(try await node.send(trigger).status == 202)
            _ = try await node.upstream.waitForAccepted(1)
            // A repeat within the interval is held back while PagerDuty has the incident open.
            let repeated = TestSupport.alert(dedupKey: "pump-7", summary: "pump 7 pressure low", extra: ["client": "scan 2"])
            #expect(try await node.send(repeated).json?["dedup_key"] as? String == "pump-7")
            let folder = try await IncidentTests.waitForFolder(node.client, "pump-7") {
                IncidentTests.outcomes($0).contains("repeat_suppressed")
            }
            #expect(IncidentTests.outcomes(folder).contains("repeat_suppressed"))

            // Refusals first; none changes the folder.
            let resolve = Self.webhook("incident.resolved", key: "pump-7", id: "W1")
            var tampered = resolve
            tampered[tampered.count / 2] ^= 0x01
            #expect(
                try await Self.post(node, tampered, id: "W1", signature: Self.sign(resolve)).status
                    == 401)
            #expect(
                try await Self.post(
                    node, resolve, id: "W1", signature: Self.sign(resolve, secret: "another secret of 16+")
                ).status == 401)
            let malformed = Array(#"{"event": {"id": "W9"}}"#.utf8)
            #expect(try await Self.post(node, malformed, id: "W9").status == 400)
            #expect((try await node.client.get("/v1/incidents/pump-7").json?["incident"] as? [String: Any])?["pager_duty"] == nil)

            // The genuine one.
            let applied = try await Self.post(node, resolve, id: "W1")
            #expect(applied.status == 202 && applied.json?["status"] as? String == "applied", "\(applied.text)")
            let incident = try #require(try await node.client.get("/v1/incidents/pump-7").json?["incident"] as? [String: Any])
            #expect(incident["state"] as? String == "resolved")
            let pagerDuty = try #require(incident["pager_duty"] as? [String: Any])
            #expect(
                pagerDuty["status"] as? String == "resolved" && pagerDuty["by"] as? String == "Ada Operator"
                    && pagerDuty["webhook_id"] as? String == "W1")
            // PagerDuty's retry of it is a duplicate, and still a 2xx (a 4xx would make
            // PagerDuty count a failure).
            let retried = try await Self.post(node, resolve, id: "W1")
            #expect(retried.status == 202 && retried.json?["status"] as? String == "duplicate")

            // The same trigger again: the incident is closed in PagerDuty, so it goes.
            let again = TestSupport.alert(dedupKey: "pump-7", summary: "pump 7 pressure low", extra: ["client": "scan 3"])
            #expect(try await node.send(again).status == 202)
            let delivered = try await node.upstream.waitForAccepted(2)
            #expect(delivered.filter { $0.dedupKey == "pump-7" }.count == 2)

            // The safelist changes without a restart: this client is no longer in it.
            try "203.0.113.0/24\n".write(toFile: networks, atomically: true, encoding: .utf8)
            let acknowledge = Self.webhook("incident.acknowledged", key: "pump-7", id: "W2", occurredIn: 1_000)
            let refused = try await Self.post(node, acknowledge, id: "W2")
            #expect(refused.status == 403, "\(refused.text)")
            #expect((try await node.client.get("/v1/incidents/pump-7").json?["incident"] as? [String: Any])?["state"] as? String == "open")
            let metrics = try await node.client.get("/metrics").text
            #expect(metrics.contains(#"pdrelay_webhooks_total{outcome="forbidden"} 1"#))
            #expect(metrics.contains(#"pdrelay_webhooks_total{outcome="bad_signature"} 2"#))
        }
    }

    /// Without a leader the webhook cannot be recorded: a 5xx, which PagerDuty retries, saying
    /// why rather than blaming the clock.
    @Test func aWebhookThatCannotBeRecordedGetsA503NamingWhy() async throws {
        let networks = TestSupport.temporaryDirectory("webhook") + "/networks.txt"
        try "127.0.0.1\n::1\n".write(toFile: networks, atomically: true, encoding: .utf8)
        let peerPort = PeerTestSupport.peerPort()
        try await TestNode.run(configure: {
            PeerTestSupport.loneMember(&$0, peerPort: peerPort, secret: "0123456789abcdef0123456789abcdef-test")
            $0.leaderWaitMilliseconds = 400
            $0.webhookSecret = Self.secret
            $0.webhookAllowedNetworksFile = networks
        }) { node in
            let answer = try await Self.post(node, Self.webhook("incident.resolved", key: "pump-7", id: "W1"), id: "W1")
            #expect(answer.status == 503, "\(answer.text)")
            #expect(answer.text.contains("no cluster leader is known"), "\(answer.text)")
            #expect(answer.retryAfter == "1")
        }
    }
}
