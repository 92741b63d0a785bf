import Foundation
import GatewayCore
import RelayCore
import Testing

@Suite struct RuleMatcherTests {
    static let routingKey = "R0UTINGKEY0000000000000000000001"

    static func rules(_ yamlAsJSON: String) throws -> GatewayRules {
        try GatewayRules(try JSONValue.parse(Array(yamlAsJSON.utf8)), file: "rules.yaml")
    }

    static let plant = """
        {"syslog": {"rules": [
            {"name": "over-temperature", "match": {"hostname": "plc-*", "app": "TEMPCTL"},
             "regex": {"message": "zone (?<zone>\\\\S+) at (?<celsius>[0-9.]+) C"},
             "event": {"routing_key": "\(routingKey)", "severity": "critical",
                       "summary": "{hostname}: zone {zone} at {celsius} C", "dedup_key": "{hostname}/{app}/{zone}"}},
            {"name": "back-to-normal", "match": {"app": "TEMPCTL"}, "regex": {"message": "zone (?<zone>\\\\S+) normal"},
             "event": {"routing_key": "\(routingKey)", "action": "resolve", "dedup_key": "{hostname}/{app}/{zone}"}}
          ], "unmatched": "drop"},
         "snmp_traps": {"communities": ["public"], "rules": [
            {"name": "link", "match": {"trap": ["linkDown", "linkUp"]},
             "event": {"routing_key": "\(routingKey)", "action": "{link_action}", "dedup_key": "{agent}:{ifIndex}"}}],
          "unmatched": {"routing_key": "\(routingKey)", "summary": "trap {trap} from {agent}"}}}
        """

    func decoded(_ verdict: GatewayVerdict) throws -> JSONValue {
        guard case .event(let bytes, _, _) = verdict else { throw Unexpected(verdict: verdict) }
        return try JSONValue.parse(bytes)
    }

    struct Unexpected: Error { let verdict: GatewayVerdict }

    @Test func aMatchingMessageBecomesAnEventWithItsCapturesInTheKey() throws {
        let matcher = RuleMatcher(try Self.rules(Self.plant), gateway: .syslog)
        let message = try SyslogParser.parse(Array("<11>Dec  4 16:00:01 plc-7 TEMPCTL[311]: zone B2 at 71.5 C".utf8))
        let verdict = matcher.map(message.fields(sender: "10.0.0.7"))
        guard case .event(_, let rule, _) = verdict else { throw Unexpected(verdict: verdict) }
        #expect(rule == "over-temperature")
        let event = try decoded(verdict)
        #expect(event["dedup_key"] == "plc-7/TEMPCTL/B2" && event["event_action"] == "trigger")
        #expect(event["payload"]?["summary"] == "plc-7: zone B2 at 71.5 C" && event["payload"]?["severity"] == "critical")
        #expect(event["payload"]?["source"] == "plc-7" && event["payload"]?["component"] == "TEMPCTL")
        #expect(event["payload"]?["custom_details"]?["celsius"] == "71.5")
        // What the rule built is an event the HTTP endpoint would take as it is.
        guard case .event(let bytes, _, _) = verdict else { return }
        #expect((try? EventValidator.validate(body: bytes, api: .v2Alert).get()) != nil)

        let normal = try SyslogParser.parse(Array("<14>Dec  4 16:09:00 plc-7 TEMPCTL: zone B2 normal".utf8))
        let resolve = try decoded(matcher.map(normal.fields(sender: "10.0.0.7")))
        #expect(resolve["event_action"] == "resolve" && resolve["dedup_key"] == "plc-7/TEMPCTL/B2" && resolve["payload"] == nil)
    }

    @Test func noRuleMeansTheSectionsDefault() throws {
        let rules = try Self.rules(Self.plant)
        let other = try SyslogParser.parse(Array("<14>Dec  4 16:09:00 plc-7 other: hello".utf8))
        #expect(RuleMatcher(rules, gateway: .syslog).map(other.fields(sender: "x")) == .unmatched)
        #expect(RuleMatcher(rules, gateway: .lines).map(["sender": "x"]) == .unmatched, "an absent section drops")
        let verdict = RuleMatcher(rules, gateway: .snmpTraps).map(["trap": "coldStart", "agent": "10.9.9.9", "sender": "10.9.9.9"])
        #expect(try decoded(verdict)["payload"]?["summary"] == "trap coldStart from 10.9.9.9")
    }

    @Test func aResolveWithoutItsKeyFieldsIsNotSentButATriggerIs() throws {
        let rules = try Self.rules(Self.plant)
        let matcher = RuleMatcher(rules, gateway: .snmpTraps)
        let down = matcher.map(["trap": "linkDown", "agent": "10.0.0.1", "sender": "10.0.0.1", "link_action": "trigger"])
        #expect(try decoded(down)["event_action"] == "trigger" && (try decoded(down)["dedup_key"]) == nil)
        guard
            case .unmappable(let rule, let reason) = matcher.map([
                "trap": "linkUp", "agent": "10.0.0.1", "sender": "x", "link_action": "resolve",
            ])
        else {
            Issue.record("a resolve without ifIndex was sent")
            return
        }
        #expect(rule == "link" && reason.contains("agent, ifIndex"))
        guard case .unmappable = matcher.map(["trap": "linkUp", "agent": "a", "ifIndex": "1", "sender": "x", "link_action": "close"]) else {
            Issue.record("an action that is not one was sent")
            return
        }
    }

    @Test func badRulesAreRefusedWithTheirPlace() {
        for (text, fragment) in [
            (#"{"syslgo": {}}"#, "has 'syslgo'"),
            (#"{"syslog": {"rules": [{"name": "x", "regex": {"message": "(unclosed"}, "event": {}}]}}"#, "regex.message is not a valid"),
            (#"{"syslog": {"rules": [{"name": "x", "event": {"severity": "urgent"}}]}}"#, "severity must be"),
            (#"{"syslog": {"rules": [{"name": "x", "event": {"summary": "{host"}}]}}"#, "without its '}'"),
            (#"{"syslog": {"rules": [{"name": "x", "mtach": {}, "event": {}}]}}"#, "has 'mtach'"),
            (#"{"syslog": {"rules": [{"name": "x", "event": {}}, {"name": "x", "event": {}}]}}"#, "two rules named 'x'"),
            (#"{"syslog": {"unmatched": "keep"}}"#, "drop or an event"),
        ] {
            #expect(throws: ConfigurationError.self) { try Self.rules(text) }
            do {
                _ = try Self.rules(text)
            } catch {
                #expect("\(error)".contains(fragment), "\(error)")
            }
        }
    }
}

/// Inputs the fuzzers found (scripts/fuzz), kept so that they stay fixed.
@Suite struct FuzzRegressionTests {
    static func fixture(_ name: String) throws -> [UInt8] {
        Array(
            try Data(
                contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                    .appendingPathComponent("Fixtures/fuzz-regressions/\(name)")))
    }

    /// `lines-empty-sender` is `sender=\t\tlo=\t\tllo=""`: every field the default source names
    /// was empty, and the event went out with an empty `payload.source`, which PagerDuty (and the
    /// intake) refuse. `lines-blank-sender` is `sender=\u{0B}\t`: the fallback itself was blank.
    @Test(arguments: ["lines-empty-sender", "lines-blank-sender"])
    func aLineWhoseSourceFieldsAreAllBlankStillBuildsAValidEvent(_ input: String) throws {
        let fields = try LineParser.parse(try Self.fixture(input))
        #expect(fields["sender"]?.allSatisfy(\.isWhitespace) == true)
        let rules = try RuleMatcherTests.rules(
            #"{"lines": {"unmatched": {"routing_key": "\#(RuleMatcherTests.routingKey)", "summary": "{msg}"}}}"#)
        guard case .event(let body, _, _) = RuleMatcher(rules, gateway: .lines).map(fields) else {
            Issue.record("no event")
            return
        }
        #expect((try? EventValidator.validate(body: body, api: .v2Alert).get()) != nil, "\(String(decoding: body, as: UTF8.self))")
    }
}
