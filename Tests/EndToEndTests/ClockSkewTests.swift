import ClusterHarness
import Foundation
import MockPagerDuty
import RelayTestSupport
import Testing

extension OperatorToolTests {
    /// A node whose wall clock is an hour off, run under libfaketime (monotonic time left true).
    /// Peers refuse each other's requests beyond 60 s of skew; what matters is that both sides say
    /// so, by name, and that the other two nodes go on serving clients.
    @Suite struct ClockSkewTests {
        static let libfaketime = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"

        @Test func aNodeAnHourAheadIsNamedOnBothSidesWhileTheOtherTwoServe() async throws {
            try #require(
                FileManager.default.fileExists(atPath: Self.libfaketime), "libfaketime is missing: run scripts/install-system-packages")
            let skewed = "LD_PRELOAD=\(Self.libfaketime) FAKETIME=+1h FAKETIME_DONT_FAKE_MONOTONIC=1"
            try await ClusterRig.run(environment: ["PDRELAY_ENV_NODE_3": skewed], readyNodes: [1, 2]) { rig in
                let stream = EventStream(url: rig.cluster.loadBalancerURL, clients: 2)
                try await ClusterRig.trafficFlows(stream)

                // Each side names the other, with the skew and the signature window it breaks.
                let named = #/clock skew of 3[56]\d\d s with node (\d) exceeds 60 s/#
                try await ClusterRig.waitUntil("node 3's log names a peer's skew") {
                    rig.cluster.log(3).matches(of: named).contains { ["1", "2"].contains($0.1) }
                }
                for node in [1, 2] {
                    try await ClusterRig.waitUntil("node \(node)'s log names node 3's skew") {
                        rig.cluster.log(node).matches(of: named).contains { $0.1 == "3" }
                    }
                    try await ClusterRig.waitUntil("node \(node)'s /v1/cluster names node 3's skew") {
                        let problems = (await rig.view(node))?["problems"] as? [String] ?? []
                        return problems.contains { $0.contains("clock skew of") && $0.contains("with node 3") && $0.contains("ahead") }
                    }
                    let skews = (await rig.view(node))?["clock_skew"] as? [String: Any]
                    let skew = try #require(skews?["node-3"] as? Double, "no skew measured for node 3: \(String(describing: skews))")
                    #expect(abs(skew - 3_600_000) < 60_000, "node \(node) measured \(skew) ms")
                }
                try await ClusterRig.waitUntil("node 3's /v1/cluster names its peers' skew") {
                    let problems = (await rig.view(3))?["problems"] as? [String] ?? []
                    return problems.contains { $0.contains("clock skew of") && $0.contains("behind") }
                }
                // The log warning is rate-limited: not one line per refused request.
                let lines = rig.cluster.log(1).split(separator: "\n").filter { $0.contains("clock skew of") }.count
                #expect(lines <= 4, "node 1 logged the skew \(lines) times")

                // Nodes 1 and 2 served clients all along, and still do.
                try await ClusterRig.trafficFlows(stream)
                let outcome = await stream.stop()
                #expect(outcome.gaveUp == 0)
                let audit = await rig.audit(outcome)
                #expect(audit.lost.isEmpty, "\(audit)")
                #expect(audit.orderViolations.isEmpty, "\(audit)")
                // The pid file names the skewed node itself (not a wrapper): stopping the cluster stops it.
                let pid = try #require(rig.cluster.pid(3))
                let command = (try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? ""
                #expect(command.contains("pdrelay"), "node 3's pid file names \(command)")
                print("clock skew: \(outcome.acknowledged.count) acknowledged, \(outcome.failedAttempts) retried answers; \(audit)")
            }
        }
    }
}
