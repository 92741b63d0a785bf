import Testing

@testable import MockPagerDuty

/// The mock's own reading of PagerDuty's rules: what it accepts and what it answers 400 for.
@Suite struct PagerDutyRulesTests {
    static let key = "0123456789abcdef0123456789abcdef"

    func errors(_ json: String, change: Bool = false) -> [String] {
        PagerDutyRules.errors(body: Array(json.utf8), changeEvent: change)
    }

    @Test func documentedEventsAreAccepted() {
        #expect(
            errors(
                #"{"routing_key":"\#(Self.key)","event_action":"trigger","payload":{"summary":"disk full","source":"db-1","severity":"critical","timestamp":"2015-07-17T08:42:58.315+0000","custom_details":{"free":"0"}},"links":[{"href":"https://x"}],"images":[{"src":"https://x/i.png"}]}"#
            ).isEmpty)
        // Acknowledge and resolve need only the key; a payload on them is ignored.
        #expect(errors(#"{"routing_key":"\#(Self.key)","event_action":"resolve","dedup_key":"d","payload":{"summary":""}}"#).isEmpty)
        #expect(errors(#"{"routing_key":"\#(Self.key)","payload":{"summary":"deploy"}}"#, change: true).isEmpty)
    }

    @Test func eachBrokenRuleIsNamed() {
        #expect(
            errors(#"{"routing_key":"short","event_action":"trigger","payload":{"summary":"s","source":"s","severity":"error"}}"#)
                == ["Length of 'routing_key' is incorrect (should be 32 characters)"])
        #expect(
            errors(#"{"routing_key":"\#(Self.key)","event_action":"trigger","payload":{"summary":"s","source":"s","severity":"ERROR"}}"#)
                == ["'payload.severity' is invalid"])
        #expect(errors(#"{"routing_key":"\#(Self.key)","event_action":"acknowledge"}"#) == ["'dedup_key' is required for acknowledge"])
        let long = String(repeating: "x", count: 1_025)
        #expect(
            errors(
                #"{"routing_key":"\#(Self.key)","event_action":"trigger","payload":{"summary":"\#(long)","source":"s","severity":"info"}}"#)
                == ["'payload.summary' is longer than 1024 characters"])
        #expect(
            errors(
                #"{"routing_key":"\#(Self.key)","event_action":"trigger","payload":{"summary":"s","source":"s","severity":"info"},"images":[{"src":"http://x"}]}"#
            ) == ["'images' must be a list of objects each with an https 'src'"])
        #expect(errors(#"{"routing_key":"\#(Self.key)","event_action":"snooze"}"#).count == 1)
        #expect(errors("[]") == ["Event object is not a JSON object"])
    }
}
