import Foundation
import GatewayCore
import RelayCore
import Testing

/// PagerDuty's v3 webhook signature and body, checked against go-pagerduty's published test
/// vector (`webhookv3/webhookv3_test.go`): an oracle written by PagerDuty, not by us.
@Suite struct WebhookTests {
    static let secret = "lDQHScfUeXUKaQRNF+8XIiDKZ7XX3itBAYzwU0TARw8lJqRnkKl2iB1anSb0Z+IK"
    static let signature = "v1=0c0b9495b893a39e70d1fea2fe11fbe0a825f88b9f67846f6cc07dd2bc5476cd"
    static let body = Array(
        try! Data(
            contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent("Fixtures/webhooks/go-pagerduty-vector.body.json")))

    @Test func goPagerDutysVectorVerifies() {
        #expect(WebhookSignature.isValid(body: Self.body, header: Self.signature, secrets: [Self.secret]))
        #expect(WebhookSignature.sign(body: Self.body, secret: Self.secret) == Self.signature)
    }

    @Test func anyOfSeveralSignaturesAndEitherSecretOfARotation() {
        let other = "v1=7020c8a7ec668a9b7012bc3dd82e483394b038f4230acc6785efbf2a7d8bcaf5"
        #expect(WebhookSignature.isValid(body: Self.body, header: "\(other), \(Self.signature)", secrets: [Self.secret]))
        #expect(WebhookSignature.isValid(body: Self.body, header: Self.signature, secrets: ["a-new-secret-being-rolled-in", Self.secret]))
        #expect(
            WebhookSignature.isValid(
                body: Self.body, header: "v2=abc,\(Self.signature.uppercased().replacingOccurrences(of: "V1=", with: "v1="))",
                secrets: [Self.secret]))
    }

    @Test func aTamperedBodyAWrongSecretOrAMalformedHeaderFails() {
        var tampered = Self.body
        tampered[tampered.count / 2] ^= 0x01
        #expect(!WebhookSignature.isValid(body: tampered, header: Self.signature, secrets: [Self.secret]))
        #expect(!WebhookSignature.isValid(body: Self.body, header: Self.signature, secrets: ["not the secret at all, sorry"]))
        for header in [
            nil, "", "v1=", "v1=0c0b", "sha256=" + Self.signature.dropFirst(3), Self.signature + "00",
            String(repeating: "v1=x,", count: 300),
        ] {
            #expect(!WebhookSignature.isValid(body: Self.body, header: header, secrets: [Self.secret]), "\(header ?? "nil")")
        }
        #expect(!WebhookSignature.isValid(body: Self.body, header: Self.signature, secrets: []))
    }

    @Test func theVectorsBodyParses() throws {
        let webhook = try PagerDutyWebhook.parse(Self.body)
        #expect(webhook.eventID == "01BWDWL3NYY7LUFPZCC28QUCMK" && webhook.eventType == "incident.priority_updated")
        #expect(webhook.agent == "Tenex Engineer" && webhook.incidentID == "PGR0VU2" && webhook.occurredAt == "2021-04-26T17:36:27.458Z")
        #expect(webhook.incidentKey == nil, "the vector's incident has no incident_key")
        #expect(webhook.status == nil, "a priority change does not change the incident's status")
    }

    @Test func statusChangingEventsAndMalformedBodies() throws {
        func body(_ type: String, key: String? = "pump-7") -> [UInt8] {
            var data: [String: Any] = ["id": "Q1", "type": "incident"]
            if let key { data["incident_key"] = key }
            let event: [String: Any] = [
                "event": ["id": "E1", "event_type": type, "resource_type": "incident", "occurred_at": "2026-12-04T10:00:00Z", "data": data]
            ]
            return Array(try! JSONSerialization.data(withJSONObject: event))
        }
        #expect(try PagerDutyWebhook.parse(body("incident.resolved")).status == .resolved)
        #expect(try PagerDutyWebhook.parse(body("incident.acknowledged")).status == .acknowledged)
        #expect(try PagerDutyWebhook.parse(body("incident.reopened")).status == .triggered)
        #expect(try PagerDutyWebhook.parse(body("incident.resolved")).incidentKey == "pump-7")
        for bad in [
            "", "{", "[]", #"{"event": 1}"#, #"{"event": {"id": "x"}}"#,
            #"{"event": {"id": "x", "event_type": "incident.resolved", "occurred_at": "t"}}"#,
        ] {
            #expect(throws: GatewayParseError.self, "\(bad)") { try PagerDutyWebhook.parse(Array(bad.utf8)) }
        }
    }
}
