import ClusterHarness
import Foundation
import RelayTestSupport
import Testing

extension OperatorToolTests {
    /// The status page in a real browser: headless Chromium from Debian's packages loads `GET /` of
    /// a running three-node cluster, runs its script against `/v1/status`, and the DOM it renders
    /// names every node and the leader, before and after a `kill -9` of that leader.
    @Suite struct StatusPageTests {
        static let chromium = "/usr/bin/chromium"

        /// The page's DOM once its script has run (Chromium's virtual time lets the fetches finish).
        static func render(_ url: String, screenshot: String? = nil) async throws -> String {
            var arguments = [
                "--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=\(TestSupport.temporaryDirectory("chromium"))",
                "--virtual-time-budget=4000", "--window-size=1280,1500",
            ]
            arguments += screenshot.map { ["--screenshot=\($0)"] } ?? ["--dump-dom"]
            let result = try await CommandResult.run(Self.chromium, arguments + [url])
            try #require(result.status == 0, "chromium: \(result.stderr.suffix(1_000))")
            return result.stdout
        }

        static func leaderShown(_ dom: String) -> Int? {
            dom.firstMatch(of: /leader node (\d)/).flatMap { Int($0.1) }
        }

        @Test func theStatusPageShowsEveryNodeAndTheLeaderChangeAfterAKill9() async throws {
            try #require(
                FileManager.default.isExecutableFile(atPath: Self.chromium), "chromium is missing: run scripts/install-system-packages")
            try await ClusterRig.run { rig in
                for index in 0..<20 {
                    _ = try await rig.nodes[1]!.postRetrying("/v2/enqueue", json: TestSupport.alert(dedupKey: "page-\(index)"))
                }
                _ = try await rig.upstream.waitForAccepted(20)
                let leader = try await rig.leader()
                let watcher = LocalCluster.nodes.first { $0 != leader }!
                let page = rig.cluster.nodeURL(watcher) + "/"

                let before = try await Self.render(page)
                for node in LocalCluster.nodes { #expect(before.contains("node \(node)"), "node \(node) missing from the page") }
                #expect(Self.leaderShown(before) == leader, "the page shows leader \(String(describing: Self.leaderShown(before)))")
                // Attributes quoted: the browser's rendering, not the script's source.
                #expect(before.contains(#"<span class="ok">ready</span>"#), "the page does not say ready")
                #expect(before.contains("<rect"), "no delivery chart")
                #expect(before.contains(#"<span id="error" class="bad"></span>"#), "the page shows an error")

                await rig.cluster.kill9(leader)
                let successor = try await rig.leader(otherThan: leader)
                var after = ""
                try await ClusterRig.waitUntil("the page showing the new leader") {
                    after = (try? await Self.render(page)) ?? ""
                    return Self.leaderShown(after) == successor
                }
                for node in LocalCluster.nodes { #expect(after.contains("node \(node)")) }

                let screenshot = TestSupport.temporaryDirectory("status-page") + "/status-page.png"
                _ = try await Self.render(page, screenshot: screenshot)
                let bytes = try #require(FileManager.default.contents(atPath: screenshot))
                #expect(bytes.starts(with: [0x89, 0x50, 0x4E, 0x47]), "not a PNG")
                print(
                    "status page: leader \(leader) -> \(successor) seen from node \(watcher); screenshot \(screenshot) (\(bytes.count) bytes)"
                )
            }
        }
    }
}
