import Foundation
import RelayTestSupport
import Testing

@testable import RelayCore

@Suite struct DedupKeyTemplateTests {
    let routingKey = TestSupport.routingKey()

    func event(payload: [String: Any], dedupKey: String? = nil, action: String = "trigger") throws -> ValidatedEvent {
        var fields: [String: Any] = ["payload": payload]
        if let dedupKey { fields["dedup_key"] = dedupKey }
        let body = TestSupport.alert(action, routingKey: routingKey, extra: action == "trigger" ? fields : [:])
        return try EventValidator.validate(body: body, api: .v2Alert).get()
    }

    func acceptance(_ event: ValidatedEvent, _ templates: [String: String]) throws -> Acceptance {
        Acceptance(event, templates: try DedupKeyTemplates(templates), assignedKey: "random-key", receivedAtMilliseconds: 0)
    }

    @Test func aKeylessTriggerGetsTheKeyItsFieldsRender() throws {
        let payload: [String: Any] = [
            "summary": "link down", "source": "sw-3", "severity": "error", "component": "eth0", "class": "link",
            "custom_details": ["site": "plant-7", "port": 12],
        ]
        let accepted = try acceptance(
            try event(payload: payload), ["*": "{source}/{component}/{class}@{details.site}:{details.port}"])
        #expect(accepted.key.dedupKey == "sw-3/eth0/link@plant-7:12")
        #expect(!accepted.keyWasAssigned, "a rendered key is the client's incident, not a random one")
        let sent = try JSONValue.parse(accepted.body)
        #expect(sent["dedup_key"] == .string("sw-3/eth0/link@plant-7:12"), "PagerDuty must group by the same key")
    }

    @Test func theSameFaultRepeatedGetsTheSameKeyAndAnotherFaultAnother() throws {
        let templates = ["*": "{source}/{class}"]
        let first = try acceptance(try event(payload: ["summary": "a", "source": "h1", "severity": "info", "class": "cpu"]), templates)
        let repeated = try acceptance(try event(payload: ["summary": "b", "source": "h1", "severity": "error", "class": "cpu"]), templates)
        let other = try acceptance(try event(payload: ["summary": "a", "source": "h2", "severity": "info", "class": "cpu"]), templates)
        #expect(first.key == repeated.key)
        #expect(first.key != other.key)
    }

    @Test func aRoutingKeysOwnTemplateWinsOverTheDefault() throws {
        let payload: [String: Any] = ["summary": "s", "source": "h1", "severity": "info", "group": "g"]
        let accepted = try acceptance(try event(payload: payload), ["*": "{source}", routingKey: "{group}-{source}"])
        #expect(accepted.key.dedupKey == "g-h1")
    }

    @Test func aMissingOrEmptyFieldLeavesTheRandomKey() throws {
        for payload: [String: Any] in [
            ["summary": "s", "source": "h1", "severity": "info"],
            ["summary": "s", "source": "h1", "severity": "info", "component": ""],
        ] {
            let accepted = try acceptance(try event(payload: payload), ["*": "{source}/{component}"])
            #expect(accepted.key.dedupKey == "random-key")
            #expect(accepted.keyWasAssigned)
        }
    }

    @Test func theClientsOwnKeyIsNeverReplaced() throws {
        let payload: [String: Any] = ["summary": "s", "source": "h1", "severity": "info"]
        let accepted = try acceptance(try event(payload: payload, dedupKey: "mine"), ["*": "{source}"])
        #expect(accepted.key.dedupKey == "mine")
    }

    @Test func v1TriggersRenderFromTheirTranslatedFields() throws {
        let body = Array(
            try JSONSerialization.data(withJSONObject: [
                "service_key": routingKey, "event_type": "trigger", "description": "pump 4 stopped", "client": "scada-1",
                "details": ["line": "B"],
            ]))
        let event = try EventValidator.validate(body: body, api: .v1Generic).get()
        #expect(try acceptance(event, ["*": "{source}/{details.line}"]).key.dedupKey == "scada-1/B")
    }

    @Test func aLongRenderingStaysWithinPagerDutysLimitAndDistinct() throws {
        let template = ["*": "{summary}"]
        let long = String(repeating: "x", count: 900)
        let a = try acceptance(try event(payload: ["summary": long + "a", "source": "h", "severity": "info"]), template)
        let b = try acceptance(try event(payload: ["summary": long + "b", "source": "h", "severity": "info"]), template)
        #expect(a.key.dedupKey.count == DedupKeyTemplate.maxKeyCharacters)
        #expect(b.key.dedupKey.count == DedupKeyTemplate.maxKeyCharacters)
        #expect(a.key != b.key)
    }

    @Test(arguments: [
        ("", "1 to 512 characters"),
        ("static", "names no field"),
        ("{source", "'{' without its '}'"),
        ("source}", "'}' without its '{'"),
        ("{host}", "names '{host}'"),
        ("{details.}", "names '{details.}'"),
    ])
    func badTemplatesAreRefusedWithTheReason(_ text: String, _ reason: String) {
        #expect {
            try DedupKeyTemplate(text)
        } throws: { error in
            (error as? ConfigurationError)?.description.contains(reason) == true
        }
    }

    @Test func theTableIsBoundedAndNamesTheEntryThatFailed() {
        let many = Dictionary(uniqueKeysWithValues: (0...DedupKeyTemplates.maxEntries).map { ("key\($0)", "{source}") })
        #expect(throws: ConfigurationError.self) { try DedupKeyTemplates(many) }
        #expect {
            try DedupKeyTemplates([routingKey: "{nope}"])
        } throws: { error in
            let text = (error as? ConfigurationError)?.description ?? ""
            return text.contains(RoutingKeyMask.mask(routingKey)) && !text.contains(routingKey)
        }
    }
}
