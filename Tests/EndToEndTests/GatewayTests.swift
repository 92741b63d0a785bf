import Foundation
import MockPagerDuty
import RelayClient
import RelayProcess
import RelayTestSupport
import Testing

/// The gateways against real senders: util-linux `logger` (UDP and TCP, RFC 5424 and RFC 3164),
/// net-snmp's `snmptrap` (v1 and v2c) and OpenBSD `nc`, into one `pdrelay serve` delivering to
/// the mock. The rules come from a YAML file, as an operator writes them.
@Suite(.serialized, RelayLoad.node) struct GatewayTests {
    static let routingKey = TestSupport.routingKey(7)

    static let rules = """
        syslog:
          rules:
            - name: back-to-normal
              match: {app: TEMPCTL}
              regex: {message: 'zone (?<zone>\\S+) normal'}
              event: {routing_key: \(routingKey), action: resolve, dedup_key: "{hostname}/{app}/{zone}"}
            - name: over-temperature
              match: {app: TEMPCTL, severity: [emerg, alert, crit, err]}
              regex: {message: 'zone (?<zone>\\S+) at (?<celsius>[0-9.]+) C'}
              event:
                routing_key: \(routingKey)
                severity: critical
                summary: "{hostname}: zone {zone} at {celsius} C"
                dedup_key: "{hostname}/{app}/{zone}"
          unmatched: drop
        snmp_traps:
          communities: [plant-secret]
          rules:
            - name: link-down
              match: {trap: linkDown}
              event: {routing_key: \(routingKey), severity: error, summary: "port {ifIndex} down on {agent}", dedup_key: "{agent}:{ifIndex}"}
            - name: link-up
              match: {trap: linkUp}
              event: {routing_key: \(routingKey), action: resolve, dedup_key: "{agent}:{ifIndex}"}
        lines:
          rules:
            - name: cleared
              match: {state: cleared}
              event: {routing_key: \(routingKey), action: resolve, dedup_key: "{site}/{unit}"}
            - name: alarm
              match: {site: "*", unit: "*"}
              event: {routing_key: \(routingKey), summary: "{msg}", severity: "{level}", dedup_key: "{site}/{unit}"}
        """

    /// A node with every gateway on a port of its own choosing, read back from its log.
    struct Node {
        let process: RelayProcess
        let ports: [String: Int]
        func port(_ setting: String) -> String { String(ports[setting]!) }
    }

    static func start(upstream: MockPagerDuty) async throws -> Node {
        let directory = TestSupport.temporaryDirectory("gateways")
        let rulesFile = directory + "/rules.yaml"
        FileManager.default.createFile(atPath: rulesFile, contents: Data(rules.utf8), attributes: [.posixPermissions: 0o600])
        let process = try await RelayProcess(
            dataDirectory: directory + "/data", upstreamURL: await upstream.baseURL,
            environment: [
                "PDRELAY_GATEWAY_RULES_FILE": rulesFile, "PDRELAY_SYSLOG_UDP_ADDRESS": "127.0.0.1:0",
                "PDRELAY_SYSLOG_TCP_ADDRESS": "127.0.0.1:0", "PDRELAY_SNMP_TRAP_ADDRESS": "127.0.0.1:0",
                "PDRELAY_LINE_TCP_ADDRESS": "127.0.0.1:0",
            ])
        var ports: [String: Int] = [:]
        try await ClusterRig.waitUntil("four gateways listening") {
            for match in process.log.matches(of: /gateway_address=127\.0\.0\.1:(\d+) setting=(\w+)/) {
                ports[String(match.2)] = Int(match.1)
            }
            return ports.count == 4
        }
        return Node(process: process, ports: ports)
    }

    static var hostname: String {
        var buffer = [CChar](repeating: 0, count: 256)
        gethostname(&buffer, buffer.count)
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func run(_ tool: String, _ arguments: [String], input: String? = nil) async throws {
        let result: CommandResult
        if let input {
            result = try await CommandResult.run(
                "/bin/sh", ["-c", "printf '%s' \"$INPUT\" | \(tool) \"$@\"", "sh"] + arguments, environment: ["INPUT": input])
        } else {
            result = try await CommandResult.run(tool, arguments)
        }
        #expect(result.status == 0, "\(tool) \(arguments): \(result.stderr)")
    }

    static func logger(_ node: Node, udp: Bool, format: String, priority: String, _ text: String, octetCount: Bool = false) async throws {
        let transport = udp ? ["-d", "-P", node.port("syslog_udp_address")] : ["-T", "-P", node.port("syslog_tcp_address")]
        try await run(
            "/usr/bin/logger",
            ["-n", "127.0.0.1"] + transport + ["--\(format)", "-t", "TEMPCTL", "-p", priority] + (octetCount ? ["--octet-count"] : []) + [
                text
            ])
    }

    static func metric(_ node: Node, _ gateway: String, _ outcome: String) async throws -> Int {
        try await RelayClient.with(baseURL: node.process.url) { client in
            let text = try await client.get("/metrics").text
            let line = text.split(separator: "\n").first {
                $0.hasPrefix("pdrelay_gateway_messages_total") && $0.contains("gateway=\"\(gateway)\"")
                    && $0.contains("outcome=\"\(outcome)\"")
            }
            return line.flatMap { Int($0.split(separator: " ").last ?? "") } ?? 0
        }
    }

    @Test func loggerOverUDPAndTCPInBothFormatsBecomesEventsWithStableKeys() async throws {
        let upstream = MockPagerDuty()
        try await upstream.start()
        let node = try await Self.start(upstream: upstream)
        let host = Self.hostname
        try await Self.logger(node, udp: true, format: "rfc5424", priority: "local0.crit", "zone B1 at 71.5 C")
        try await Self.logger(node, udp: true, format: "rfc3164", priority: "local0.err", "zone B2 at 70.0 C")
        try await Self.logger(node, udp: false, format: "rfc5424", priority: "local0.alert", "zone B3 at 69.5 C", octetCount: true)
        try await Self.logger(node, udp: false, format: "rfc3164", priority: "local0.crit", "zone B4 at 72.0 C")
        // Not an alarm (severity info), not a rule's message, and not syslog at all: none is an
        // event, and none stops the listeners.
        try await Self.logger(node, udp: true, format: "rfc5424", priority: "local0.info", "zone B5 at 60.0 C")
        try await Self.logger(node, udp: false, format: "rfc3164", priority: "local0.crit", "hello")
        try await Self.run("/usr/bin/nc", ["-N", "127.0.0.1", node.port("syslog_tcp_address")], input: "this is not syslog\n")
        try await Self.run("/usr/bin/nc", ["-u", "-w1", "127.0.0.1", node.port("syslog_udp_address")], input: "neither is this")
        // The marker, after them: a resolve over TCP and one over UDP.
        try await Self.logger(node, udp: false, format: "rfc5424", priority: "local0.notice", "zone B3 normal", octetCount: true)
        try await Self.logger(node, udp: true, format: "rfc3164", priority: "local0.notice", "zone B1 normal")

        let keys = ["B1", "B2", "B3", "B4"].map { "\(host)/TEMPCTL/\($0)" }
        let delivered = try await upstream.waitForAccepted(until: { $0.dedupKey == keys[0] && $0.action == "resolve" })
        let triggers = delivered.filter { $0.action == "trigger" }
        #expect(Set(triggers.compactMap(\.dedupKey)) == Set(keys))
        #expect(triggers.count == 4, "no other message became an event: \(triggers.compactMap(\.dedupKey))")
        let b1 = try #require(triggers.first { $0.dedupKey == keys[0] }?.json?["payload"] as? [String: Any])
        #expect(b1["summary"] as? String == "\(host): zone B1 at 71.5 C")
        #expect(b1["severity"] as? String == "critical" && b1["source"] as? String == host && b1["component"] as? String == "TEMPCTL")
        #expect(((b1["custom_details"] as? [String: Any])?["format"]) as? String == "rfc5424")
        _ = try await upstream.waitForAccepted(until: { $0.dedupKey == keys[2] && $0.action == "resolve" })
        // Each key's resolve came after its trigger.
        for key in [keys[0], keys[2]] {
            #expect(await upstream.accepted.filter { $0.dedupKey == key }.map(\.action) == ["trigger", "resolve"])
        }
        #expect(try await Self.metric(node, "syslog", "unmatched") == 2)
        #expect(try await Self.metric(node, "syslog", "malformed") == 2)
        #expect(try await Self.metric(node, "syslog", "event") == 6)
        #expect(await node.process.terminate() == 0)
        await upstream.stop()
    }

    @Test func snmptrapV1AndV2cLinkDownThenLinkUpShareAKey() async throws {
        let upstream = MockPagerDuty()
        try await upstream.start()
        let node = try await Self.start(upstream: upstream)
        let target = "127.0.0.1:\(node.port("snmp_trap_address"))"
        let ifIndex = "1.3.6.1.2.1.2.2.1.1"
        // v1: enterprise, agent-addr, generic-trap 2 (linkDown) or 3 (linkUp), specific, uptime.
        func v1(_ generic: String, _ index: String, community: String = "plant-secret") async throws {
            try await Self.run(
                "/usr/bin/snmptrap",
                [
                    "-v", "1", "-c", community, target, "1.3.6.1.4.1.8072.3.2.10", "127.0.0.1", generic, "0", "", "\(ifIndex).\(index)",
                    "i", index,
                ])
        }
        func v2c(_ trap: String, _ index: String) async throws {
            try await Self.run(
                "/usr/bin/snmptrap", ["-v", "2c", "-c", "plant-secret", target, "", trap, "\(ifIndex).\(index)", "i", index])
        }
        let (linkDown, linkUp) = ("1.3.6.1.6.3.1.1.5.3", "1.3.6.1.6.3.1.1.5.4")
        try await v1("2", "3")
        try await v2c(linkDown, "4")
        try await v1("2", "5", community: "public")  // the wrong community: dropped
        try await v2c(linkUp, "3")
        try await v1("3", "4")
        let delivered = try await upstream.waitForAccepted(until: { $0.dedupKey == "127.0.0.1:4" && $0.action == "resolve" })
        let byKey = Dictionary(grouping: delivered, by: { $0.dedupKey ?? "" }).mapValues { $0.map(\.action!) }
        #expect(byKey["127.0.0.1:3"] == ["trigger", "resolve"])
        #expect(byKey["127.0.0.1:4"] == ["trigger", "resolve"])
        #expect(byKey["127.0.0.1:5"] == nil)
        let down = try #require(delivered.first { $0.dedupKey == "127.0.0.1:3" }?.json?["payload"] as? [String: Any])
        #expect(down["summary"] as? String == "port 3 down on 127.0.0.1" && down["severity"] as? String == "error")
        #expect(try await Self.metric(node, "snmp_traps", "bad_community") == 1)
        #expect(!node.process.log.contains("plant-secret"), "the community is a secret")
        #expect(await node.process.terminate() == 0)
        await upstream.stop()
    }

    @Test func ncLinesInKeyValueAndJSONForm() async throws {
        let upstream = MockPagerDuty()
        try await upstream.start()
        let node = try await Self.start(upstream: upstream)
        let lines = [
            #"site=water-3 unit=pump-2 level=crit msg="pressure low on pump 2""#,
            #"{"site":"bess-1","unit":"rack-4","level":"warning","msg":"thermal inertia: cell 41 C rising"}"#,
            "this line has no pairs",
            "site=water-3 unit=pump-2 state=cleared",
        ].joined(separator: "\n")
        try await Self.run("/usr/bin/nc", ["-N", "127.0.0.1", node.port("line_tcp_address")], input: lines + "\n")
        _ = try await upstream.waitForAccepted(until: { $0.dedupKey == "water-3/pump-2" && $0.action == "resolve" })
        #expect(await upstream.waitUntilDelivered(dedupKeys: ["bess-1/rack-4"], timeout: .seconds(30)).isEmpty)
        let delivered = await upstream.accepted
        // One incident's events in order; different incidents may pass each other.
        let byKey = Dictionary(grouping: delivered, by: { $0.dedupKey ?? "" }).mapValues { $0.map(\.action!) }
        #expect(byKey == ["water-3/pump-2": ["trigger", "resolve"], "bess-1/rack-4": ["trigger"]])
        let bess = try #require(delivered.first { $0.dedupKey == "bess-1/rack-4" }?.json?["payload"] as? [String: Any])
        #expect(bess["summary"] as? String == "thermal inertia: cell 41 C rising" && bess["severity"] as? String == "warning")
        #expect(try await Self.metric(node, "lines", "malformed") == 1)
        #expect(await node.process.terminate() == 0)
        await upstream.stop()
    }
}
