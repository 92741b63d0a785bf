import Foundation
import RelayTestSupport
import SeededRandom
import Testing

@testable import RelayCore

/// The digest lane in simulated time: the state machine alone, driven by events' own times.
@Suite struct DigestTests {
    let routingKey = TestSupport.routingKey()

    func machine(_ rules: [String: String]) throws -> RelayStateMachine {
        RelayStateMachine(limits: .init(maxQueuedEvents: 10_000, maxDedupKeys: 20_000, digestRules: try DigestRules(rules)))
    }

    static func body(routingKey: String, key: String, severity: String, summary: String, source: String) -> [UInt8] {
        TestSupport.alert(
            routingKey: routingKey, dedupKey: key, extra: ["payload": ["summary": summary, "source": source, "severity": severity]])
    }

    static func accept(_ body: [UInt8], at time: Int64, into machine: inout RelayStateMachine) -> CommandResult {
        let event = try! EventValidator.validate(body: body, api: .v2Alert).get()
        var effects = RelayStateMachine.Effects()
        return machine.apply(.accept(Acceptance(event, assignedKey: "unused", receivedAtMilliseconds: time)), effects: &effects)
    }

    /// The issue's point: 1,000 info events over 10 minutes become the configured number of
    /// digests (every 2 minutes: 5), whose counts add up to 1,000, by source and by summary.
    @Test func aThousandInfoEventsOverTenMinutesBecomeFiveDigestsWithCorrectCounts() throws {
        var machine = try machine([routingKey: "info:120"])
        var random = SplitMix64(seed: 12)
        let start: Int64 = 1_800_000_000_000
        var sent: [String: Int] = [:]
        for index in 0..<1_000 {
            // Spread evenly over 10 minutes (600 ms apart), over 4 sources and 3 summaries: 12
            // pairs, within the 20 a digest lists.
            let source = "sensor-\(random.next() % 4)"
            let summary = "reading \(random.next() % 3) out of band"
            sent["\(source)|\(summary)", default: 0] += 1
            let result = Self.accept(
                Self.body(routingKey: routingKey, key: "telemetry-\(index % 40)", severity: "info", summary: summary, source: source),
                at: start + Int64(index) * 600, into: &machine)
            #expect(result == .digested(dedupKey: "telemetry-\(index % 40)"))
        }
        var effects = RelayStateMachine.Effects()
        _ = machine.apply(.flushDigests(atMilliseconds: start + 600_000), effects: &effects)
        let digests = machine.events(matching: EventFilter(), limit: .max)
        #expect(digests.count == 5)
        var total = 0
        var counted: [String: Int] = [:]
        for digest in digests {
            let payload = try #require(
                (try JSONSerialization.jsonObject(with: Data(digest.body)) as? [String: Any])?["payload"] as? [String: Any])
            let details = try #require(payload["custom_details"] as? [String: Any])
            #expect(payload["severity"] as? String == "info")
            total += details["events"] as? Int ?? 0
            for entry in details["top"] as? [[String: Any]] ?? [] {
                counted["\(entry["source"] as? String ?? "")|\(entry["summary"] as? String ?? "")", default: 0] +=
                    entry["count"] as? Int ?? 0
            }
            let bySource = details["by_source"] as? [String: Int] ?? [:]
            #expect(bySource.values.reduce(0, +) == details["events"] as? Int)
            #expect(digest.key.dedupKey.hasPrefix("pdrelay-digest/"))
        }
        #expect(total == 1_000)
        #expect(counted == sent, "every (source, summary) is listed with its count")
    }

    @Test func higherSeverityGoesAtOnceAndDigestedIncidentsResolvesStayOut() throws {
        var machine = try machine(["*": "warning:600"])
        let info = Self.body(routingKey: routingKey, key: "db-1", severity: "info", summary: "slow", source: "db-1")
        #expect(Self.accept(info, at: 0, into: &machine) == .digested(dedupKey: "db-1"))
        let error = Self.body(routingKey: routingKey, key: "db-1", severity: "error", summary: "down", source: "db-1")
        #expect(Self.accept(error, at: 10, into: &machine) == .accepted(dedupKey: "db-1", eventNumber: 1))
        // A resolve of an incident PagerDuty has open goes; one never forwarded stays out.
        #expect(
            Self.accept(TestSupport.alert("resolve", routingKey: routingKey, dedupKey: "db-1"), at: 20, into: &machine)
                == .accepted(dedupKey: "db-1", eventNumber: 2))
        #expect(
            Self.accept(
                Self.body(routingKey: routingKey, key: "db-2", severity: "warning", summary: "w", source: "x"), at: 30, into: &machine)
                == .digested(dedupKey: "db-2"))
        #expect(
            Self.accept(TestSupport.alert("resolve", routingKey: routingKey, dedupKey: "db-2"), at: 40, into: &machine)
                == .digested(dedupKey: "db-2"))
        // Critical is never digested, whatever the rule.
        let critical = Self.body(routingKey: routingKey, key: "db-3", severity: "critical", summary: "c", source: "x")
        #expect(Self.accept(critical, at: 50, into: &machine) == .accepted(dedupKey: "db-3", eventNumber: 3))
        #expect(machine.folder(for: OrderingKey(routingKey: routingKey, dedupKey: "db-2"))?.counts.digested == 2)
    }

    @Test func theNextEventAfterTheIntervalSendsTheDigestFirst() throws {
        var machine = try machine([routingKey: "info:60"])
        _ = Self.accept(Self.body(routingKey: routingKey, key: "a", severity: "info", summary: "s", source: "x"), at: 0, into: &machine)
        #expect(machine.hasDigestsDue(at: 59_999) == false && machine.hasDigestsDue(at: 60_000))
        let later = Self.body(routingKey: routingKey, key: "b", severity: "info", summary: "s", source: "x")
        #expect(Self.accept(later, at: 60_000, into: &machine) == .digested(dedupKey: "b"))
        #expect(machine.events(matching: EventFilter(), limit: .max).map(\.key.dedupKey) == ["pdrelay-digest/0"])
    }

    @Test func badRulesAreRefused() {
        for text in ["info", "critical:600", "info:10", "info:x", "loud:600", "info:600:1"] {
            #expect(throws: ConfigurationError.self, "\(text)") { try DigestRules(["*": text]) }
        }
        #expect(throws: Never.self) { try DigestRules(["*": "warning:3600"]) }
    }
}
