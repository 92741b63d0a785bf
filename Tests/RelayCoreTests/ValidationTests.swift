import Foundation
import RelayTestSupport
import Testing

@testable import RelayCore

@Suite struct ValidationTests {
    func validate(_ body: [UInt8], _ api: IngestAPI = .v2Alert) -> Result<ValidatedEvent, IngestError> {
        EventValidator.validate(body: body, api: api)
    }

    func errors(_ body: [UInt8], _ api: IngestAPI = .v2Alert) -> [String] {
        guard case .failure(let error) = validate(body, api) else { return [] }
        return error.errors
    }

    @Test(arguments: ["trigger", "resolve"])
    func alertmanagerFixturesAreAcceptedAndForwardedUntouched(_ name: String) throws {
        let body = try TestSupport.fixtureBytes("clients/alertmanager-0.25/\(name).body.json")
        let event = try validate(body).get()
        #expect(event.dedupKey == "16489ac53e15464b8136490544d119fc06addd0477e5a4cb082743404aac8857")
        #expect(event.action.rawValue == name)
        #expect(event.upstreamBody(assignedDedupKey: "unused") == body)
    }

    @Test func triggerWithoutDedupKeyGetsTheAssignedKeyInItsBody() throws {
        let event = try validate(TestSupport.alert()).get()
        #expect(event.dedupKey == nil)
        let sent = try JSONValue.parse(event.upstreamBody(assignedDedupKey: "assigned-1"))
        #expect(sent["dedup_key"] == .string("assigned-1"))
        #expect(sent["payload"]?["summary"] == .string("disk full on db-1"))
    }

    @Test(arguments: [
        (#"{"routing_key":"short"}"#, "Length of 'routing_key' is incorrect (should be 32 characters)"),
        (#"{"routing_key":"abcdefghijklmnopqrstuvwxyz01234-"}"#, "'routing_key' cannot contain non-alphanumeric characters."),
        (#"{"event_action":"explode"}"#, "'event_action' is invalid (must be one of trigger, acknowledge, resolve)"),
        (#"{"payload":{"source":"x","severity":"info"}}"#, "'payload.summary' is missing or blank"),
        (#"{"payload":{"summary":"s","severity":"info"}}"#, "'payload.source' is missing or blank"),
        (#"{"payload":{"summary":"s","source":"x"}}"#, "'payload.severity' is missing or blank"),
        (
            #"{"payload":{"summary":"s","source":"x","severity":"Critical"}}"#,
            "'payload.severity' is invalid (must be one of critical, error, warning, info)"
        ),
        (
            #"{"payload":{"summary":"\#(String(repeating: "x", count: 1025))","source":"x","severity":"info"}}"#,
            "Length of 'payload.summary' is incorrect (should be at most 1024 characters)"
        ),
        (
            #"{"payload":{"summary":"s","source":"x","severity":"info","timestamp":"yesterday"}}"#,
            "'payload.timestamp' is invalid (must be an ISO 8601 date-time such as 2015-07-17T08:42:58.315+0000)"
        ),
        (
            #"{"payload":{"summary":"s","source":"x","severity":"info","component":5}}"#,
            "'payload.component' must be a string, not a number"
        ),
        (
            #"{"dedup_key":"\#(String(repeating: "k", count: 256))"}"#,
            "Length of 'dedup_key' is incorrect (should be at most 255 characters)"
        ),
        (#"{"images":[{"src":"http://example.com/a.png"}]}"#, "'images[0].src' must be an HTTPS URL"),
        (#"{"links":[{"text":"no href"}]}"#, "'links[0].href' is missing or blank"),
        (#"{"payload":"text"}"#, "'payload' must be an object, not a string"),
    ])
    func invalidTriggersGetPagerDutysMessages(_ change: String, _ message: String) throws {
        let extra = try #require(TestSupport.json(Array(change.utf8)))
        #expect(errors(TestSupport.alert(extra: extra)) == [message])
    }

    @Test func everyProblemIsReportedAtOnce() {
        let body = Array(#"{"routing_key":"","payload":{}}"#.utf8)
        #expect(
            errors(body) == [
                "'routing_key' is missing or blank", "'event_action' is missing or blank",
            ])
        let trigger = Array(#"{"routing_key":"routingkey0000000000000000000000","event_action":"trigger","payload":{}}"#.utf8)
        #expect(
            errors(trigger) == [
                "'payload.summary' is missing or blank", "'payload.source' is missing or blank", "'payload.severity' is missing or blank",
            ])
    }

    @Test(arguments: ["acknowledge", "resolve"])
    func acknowledgeAndResolveNeedADedupKeyButNoPayload(_ action: String) throws {
        #expect(errors(TestSupport.alert(action)) == ["'dedup_key' is missing or blank"])
        let event = try validate(TestSupport.alert(action, dedupKey: "k1")).get()
        #expect(event.dedupKey == "k1")
    }

    @Test(arguments: [
        Array("{not json".utf8), [0x7B, 0x22, 0xFF, 0xFE, 0x22, 0x3A, 0x31, 0x7D], Array("".utf8),
    ])
    func unparseableBodiesAreUnrecognized(_ body: [UInt8]) {
        #expect(
            validate(body).failureValue
                == IngestError(status: "Unrecognized object", message: "Event object format is unrecognized", errors: ["JSON parse error"]))
    }

    @Test func aJSONArrayIsUnrecognized() {
        #expect(validate(Array("[1,2]".utf8)).failureValue?.errors == ["Event must be a JSON object, not an array"])
    }

    @Test func oversizedEventsAreRefused() {
        var limits = ValidationLimits.pagerDuty
        limits.maxEventBytes = 2_000
        let body = TestSupport.alert(summary: String(repeating: "x", count: 1_000), extra: ["client": String(repeating: "x", count: 1_000)])
        #expect(EventValidator.validate(body: body, api: .v2Alert, limits: limits).failureValue?.status == "invalid event")
    }

    @Test(arguments: [
        ("2015-07-17T08:42:58.315+0000", true), ("2015-07-17T08:42:58.315+00:00", true), ("2015-07-17T08:42:58Z", true),
        ("2015-07-17T08:42:58", true), ("2015-07-17 08:42:58-05", true), ("2015-07-17T08:42", true),
        ("2015-13-17T08:42:58Z", false), ("2015-07-17", false), ("2015-07-17T08:42:58.Z", false), ("2015-07-17T08:42:58+0", false),
        ("2015-07-17T25:00:00Z", false), ("2015-07-17T08:42:58Zjunk", false),
    ])
    func timestamps(_ text: String, _ valid: Bool) {
        #expect(ISO8601Syntax.isDateTime(text) == valid)
    }

    @Test func changeEventsFollowTheirOwnRules() throws {
        let good = Array(#"{"routing_key":"a0000000000000000000000000000000","payload":{"summary":"deployed v2","source":"ci"}}"#.utf8)
        let event = try validate(good, .v2Change).get()
        #expect(event.action == .change)
        #expect(event.upstreamBody(assignedDedupKey: "x") == good)
        let ruleset = Array(#"{"routing_key":"R0000000000000000000000000000000","payload":{"summary":"s"}}"#.utf8)
        #expect(errors(ruleset, .v2Change) == ["'routing_key' is a ruleset key; change events need a service integration key"])
        let noPayload = Array(#"{"routing_key":"a0000000000000000000000000000000"}"#.utf8)
        #expect(errors(noPayload, .v2Change) == ["'payload' is missing or blank"])
    }

    @Test func v1TriggersAreTranslatedToV2() throws {
        let v1: [String: Any] = [
            "service_key": TestSupport.routingKey(), "event_type": "trigger", "description": "PLC 7 offline", "incident_key": "plc-7",
            "client": "zabbix", "client_url": "https://zabbix.example", "details": ["line": 3],
            "contexts": [
                ["type": "link", "href": "https://wiki/plc7", "text": "runbook"], ["type": "image", "src": "https://img/plc7.png"],
            ],
        ]
        let event = try validate(Array(try JSONSerialization.data(withJSONObject: v1)), .v1Generic).get()
        let sent = try JSONValue.parse(event.upstreamBody(assignedDedupKey: "unused"))
        #expect(sent["routing_key"] == .string(TestSupport.routingKey()))
        #expect(sent["event_action"] == .string("trigger"))
        #expect(sent["dedup_key"] == .string("plc-7"))
        #expect(sent["payload"]?["summary"] == .string("PLC 7 offline"))
        #expect(sent["payload"]?["severity"] == .string("error"))
        #expect(sent["payload"]?["source"] == .string("zabbix"))
        #expect(sent["payload"]?["custom_details"] == .object(["line": .integer(3)]))
        #expect(sent["links"] == .array([.object(["href": "https://wiki/plc7", "text": "runbook"])]))
        #expect(sent["images"] == .array([.object(["src": "https://img/plc7.png"])]))
        // What goes upstream is itself a valid v2 event.
        #expect((try? validate(event.upstreamBody(assignedDedupKey: "unused")).get()) != nil)
    }

    @Test func v1ErrorsUseV1FieldNames() {
        let missing = Array(#"{"event_type":"resolve"}"#.utf8)
        #expect(errors(missing, .v1Generic) == ["'service_key' is missing or blank", "'incident_key' is missing or blank"])
        let noDescription = Array(#"{"service_key":"a0000000000000000000000000000000","event_type":"trigger"}"#.utf8)
        #expect(errors(noDescription, .v1Generic) == ["'description' is missing or blank"])
        let badContext = Array(
            #"{"service_key":"a0000000000000000000000000000000","event_type":"trigger","description":"d","contexts":[{"type":"video"}]}"#
                .utf8)
        #expect(errors(badContext, .v1Generic) == ["'contexts[0].type' is invalid (must be one of link, image)"])
    }

    @Test func fingerprintsTellRetriesFromNewEvents() throws {
        let first = try validate(TestSupport.alert(dedupKey: "k")).get()
        let retry = try validate(TestSupport.alert(dedupKey: "k")).get()
        let changed = try validate(TestSupport.alert(dedupKey: "k", summary: "other")).get()
        #expect(first.fingerprint == retry.fingerprint)
        #expect(first.fingerprint != changed.fingerprint)
        #expect(first.fingerprint.count == 32)
    }

    @Test func routingKeysAreMasked() {
        #expect(RoutingKeyMask.mask("FAKEROUTINGKEY000000000000000000") == "FA…0000")
        #expect(RoutingKeyMask.mask("short") == "*****")
    }
}

extension Result {
    var failureValue: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
