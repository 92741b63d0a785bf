import ClusterHarness
import Foundation
import MockPagerDuty
import RelayClient
import RelayTestSupport
import Testing

/// Gateways on a three-node cluster: syslog into the leader and traps into a follower. What a
/// node takes is durable on a majority before it counts, so a `kill -9` of the leader that
/// received the syslog loses none of it; the next leader delivers each event once.
@Suite(RelayLoad.cluster) struct GatewayClusterTests {
    @Test func syslogAndTrapsIntoTwoNodesAreDeliveredOnceByTheLeaderAcrossAKill9OfTheirReceiver() async throws {
        let rules = TestSupport.temporaryDirectory("gateway-cluster") + "/rules.yaml"
        FileManager.default.createFile(atPath: rules, contents: Data(GatewayTests.rules.utf8), attributes: [.posixPermissions: 0o600])
        let settings = [
            "gateway_rules_file: \(rules)", "syslog_tcp_address: 127.0.0.1:0", "syslog_udp_address: 127.0.0.1:0",
            "snmp_trap_address: 127.0.0.1:0",
        ]
        // PagerDuty is down until the receiving leader is dead: nothing is delivered before.
        try await ClusterRig.run(extraSettings: settings, upstreamReply: .status(503)) { rig in
            func port(_ node: Int, _ setting: String) -> String? {
                rig.cluster.log(node).matches(of: /gateway_address=127\.0\.0\.1:(\d+) setting=(\w+)/).last { $0.2 == setting }.map {
                    String($0.1)
                }
            }
            let leader = try await rig.leader()
            let follower = LocalCluster.nodes.first { $0 != leader }!
            let survivor = LocalCluster.nodes.first { $0 != leader && $0 != follower }!
            let syslogPort = try #require(port(leader, "syslog_tcp_address"))
            let trapPort = try #require(port(follower, "snmp_trap_address"))

            let zones = ["C1", "C2", "C3", "C4", "C5"]
            for zone in zones {
                let sent = try await CommandResult.run(
                    "/usr/bin/logger",
                    [
                        "-n", "127.0.0.1", "-T", "-P", syslogPort, "--rfc5424", "--octet-count", "-t", "TEMPCTL", "-p", "local0.crit",
                        "zone \(zone) at 80.0 C",
                    ])
                #expect(sent.status == 0, "\(sent.stderr)")
            }
            for index in 1...3 {
                let sent = try await CommandResult.run(
                    "/usr/bin/snmptrap",
                    [
                        "-v", "2c", "-c", "plant-secret", "127.0.0.1:\(trapPort)", "", "1.3.6.1.6.3.1.1.5.3",
                        "1.3.6.1.2.1.2.2.1.1.\(index)", "i", String(index),
                    ])
                #expect(sent.status == 0, "\(sent.stderr)")
            }
            let keys = zones.map { "\(GatewayTests.hostname)/TEMPCTL/\($0)" } + (1...3).map { "127.0.0.1:\($0)" }
            // Durable: the node that will survive has applied every one (a folder each).
            try await ClusterRig.waitUntil("every gateway event applied on node \(survivor)", timeout: .seconds(60)) {
                var found = 0
                for key in keys
                where
                    (try? await rig.nodes[survivor]!.get(
                        "/v1/incidents/\(key.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? key)"
                    ).status) == 200
                {
                    found += 1
                }
                return found == keys.count
            }
            let oldTerm = try #require(await rig.view(leader)?["term"] as? Int)
            await rig.cluster.kill9(leader)
            let next = try await rig.leader(otherThan: leader)
            await rig.upstream.setDefaultReply(.accept)
            let missing = await rig.upstream.waitUntilDelivered(dedupKeys: Set(keys), timeout: .seconds(60))
            #expect(missing.isEmpty, "never delivered: \(missing.sorted())")
            let accepted = await rig.upstream.accepted
            for key in keys { #expect(accepted.filter { $0.dedupKey == key }.count == 1, "\(key) delivered more than once") }
            #expect(accepted.allSatisfy { Int($0.term ?? "") ?? 0 > oldTerm }, "only the new leader (node \(next)) delivered")
        }
    }
}
