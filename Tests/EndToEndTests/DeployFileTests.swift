import Foundation
import RelayTestSupport
import Testing

/// The files in `deploy/` that operators copy: HAProxy accepts every example in haproxy.cfg
/// (scripts/check-package verifies the unit, once the package has installed its binary).
@Suite struct DeployFileTests {
    static let deploy = TestSupport.packageRoot.appendingPathComponent("deploy").path

    @Test func haproxyAcceptsTheConfigWithEachTLSExampleUncommented() async throws {
        let directory = TestSupport.temporaryDirectory("haproxy-check")
        let pem = directory + "/lb.pem"
        let made = try await CommandResult.run(
            "/bin/bash",
            [
                "-c",
                "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=lb -keyout '\(pem).key' -out '\(pem)' 2>/dev/null && cat '\(pem).key' >> '\(pem)'",
            ])
        try #require(made.status == 0, "\(made.stderr)")
        let text = try String(contentsOfFile: Self.deploy + "/haproxy.cfg", encoding: .utf8)
        let examples = text.components(separatedBy: "\n#\n").filter { $0.split(separator: "\n").contains { $0.hasPrefix("#~") } }
        #expect(examples.count == 2, "the terminating and the pass-through example")
        for (index, example) in examples.enumerated() {
            let uncommented = example.split(separator: "\n", omittingEmptySubsequences: false)
                .filter { $0.hasPrefix("#~") }.map { $0.dropFirst(3) }.joined(separator: "\n")
            let file = directory + "/example-\(index).cfg"
            try (text + "\n" + uncommented + "\n").write(toFile: file, atomically: true, encoding: .utf8)
            let environment = [
                "PDRELAY_LB_BIND": "127.0.0.1:1", "PDRELAY_LB_TLS_BIND": "127.0.0.1:2", "PDRELAY_TLS_PEM": pem,
                "PDRELAY_NODE1": "127.0.0.1:3", "PDRELAY_NODE2": "127.0.0.1:4", "PDRELAY_NODE3": "127.0.0.1:5",
                "PDRELAY_NODE1_TLS": "127.0.0.1:6", "PDRELAY_NODE2_TLS": "127.0.0.1:7", "PDRELAY_NODE3_TLS": "127.0.0.1:8",
            ]
            let check = try await CommandResult.run("/usr/sbin/haproxy", ["-c", "-f", file], environment: environment)
            #expect(check.status == 0, "example \(index): \(check.stdout) \(check.stderr)")
        }
    }
}
