import ClusterHarness
import Foundation
import RelayClient
import RelayProcess
import RelayTestSupport
import Testing

extension OperatorToolTests {
    /// The node under systemd's `Type=notify`, with a test socket in systemd's place: `READY=1`
    /// only once a node that lost its disk has caught up with the cluster, `WATCHDOG=1` from the
    /// engine's loop, `STOPPING=1` on SIGTERM.
    @Suite struct SystemdNotifyTests {
        @Test func readyOnlyAfterCatchUpThenWatchdogThenStopping() async throws {
            try await ClusterRig.run(extraSettings: ["readiness_max_lag_entries: 10"]) { rig in
                for index in 0..<50 {
                    #expect(
                        try await rig.nodes[1]!.postRetrying("/v2/enqueue", json: TestSupport.alert(dedupKey: "before-\(index)")).status
                            == 202)
                }
                try await rig.cluster.terminate(3)
                try rig.cluster.wipe(3)
                // Written while node 3 is gone: it must fetch all of this before it is ready.
                for index in 0..<200 {
                    #expect(
                        try await rig.nodes[1]!.postRetrying("/v2/enqueue", json: TestSupport.alert(dedupKey: "after-\(index)")).status
                            == 202)
                }
                let leader = try await rig.leader(otherThan: 3)
                let committed = try #require((await rig.view(leader))?["commit_index"] as? Int)

                let socket = try NotifySocket(directory: rig.cluster.directory)
                let node = Process()
                node.executableURL = TestSupport.binDirectory.appendingPathComponent("pdrelay")
                node.arguments = ["serve", "--config", "\(rig.cluster.directory)/node-3.yaml"]
                node.environment = ProcessInfo.processInfo.environment.merging(
                    ["NOTIFY_SOCKET": socket.path, "WATCHDOG_USEC": "1000000"]) { _, new in new }
                let log = try #require(FileHandle(forWritingAtPath: rig.cluster.logPath(3)))
                try log.seekToEnd()
                node.standardOutput = log
                node.standardError = log
                try node.run()
                defer { if node.isRunning { kill(node.processIdentifier, SIGKILL) } }

                let (before, ready) = try await socket.waitFor(line: "READY=1", timeout: .seconds(60))
                // Asked at once: the node said READY only when it had what the cluster had committed.
                let view = try #require(await rig.view(3))
                #expect(view["voting"] as? Bool == true, "READY=1 before the node may vote: \(view)")
                #expect((view["applied_index"] as? Int ?? 0) >= committed, "READY=1 at \(view), the cluster had committed \(committed)")
                #expect((view["apply_lag_entries"] as? Int ?? .max) <= 10, "\(view)")
                #expect(before.contains { $0.hasPrefix("STATUS=not ready") }, "no 'not ready' status before READY=1: \(before)")
                #expect(!before.contains { $0.contains("READY=1") })
                print("systemd notify: before READY=1: \(before); then: \(ready)")

                _ = try await socket.waitFor(line: "WATCHDOG=1", timeout: .seconds(10))
                kill(node.processIdentifier, SIGTERM)
                let (_, stopping) = try await socket.waitFor(line: "STOPPING=1", timeout: .seconds(10))
                print("systemd notify: \(stopping)")
                await RelayProcess.waitForExit(node)
                #expect(node.terminationStatus == 0)
            }
        }
    }
}
