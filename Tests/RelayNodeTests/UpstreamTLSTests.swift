import Foundation
import MockPagerDuty
import RelayProcess
import RelayTestSupport
import Testing

/// Delivery over real TLS: the node verifies the upstream's certificate against the system CA
/// store plus `upstream_ca_file`, and an unverifiable upstream gets nothing.
@Suite(.serialized, RelayLoad.node) struct UpstreamTLSTests {
    /// A throwaway self-signed certificate for 127.0.0.1, made with the openssl command.
    static func makeCertificate() async throws -> MockPagerDuty.TLSFiles {
        let directory = TestSupport.temporaryDirectory("tls")
        let openssl = Process()
        openssl.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        openssl.arguments = [
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", directory + "/key.pem", "-out", directory + "/cert.pem",
        ]
        openssl.standardError = FileHandle.nullDevice
        try openssl.run()
        await RelayProcess.waitForExit(openssl)
        #expect(openssl.terminationStatus == 0)
        return MockPagerDuty.TLSFiles(certificatePath: directory + "/cert.pem", privateKeyPath: directory + "/key.pem")
    }

    @Test func aTrustedCAFileLetsDeliveriesThrough() async throws {
        let files = try await Self.makeCertificate()
        let upstream = MockPagerDuty()
        try await upstream.start(tls: files)
        #expect(await upstream.baseURL.hasPrefix("https://"))
        try await TestNode.run(configure: { $0.upstreamCAFile = files.certificatePath }, upstream: upstream) { node in
            try await node.send(TestSupport.alert(dedupKey: "over-tls"))
            let delivered = try await upstream.waitForAccepted(1)
            #expect(delivered.map(\.dedupKey) == ["over-tls"])
        }
    }

    @Test func anUntrustedCertificateIsRefusedAndTheEventWaits() async throws {
        let files = try await Self.makeCertificate()
        let upstream = MockPagerDuty()
        try await upstream.start(tls: files)
        try await TestNode.run(upstream: upstream) { node in
            try await node.send(TestSupport.alert(dedupKey: "untrusted"))
            var pending: [[String: Any]] = []
            // Until the first attempt is recorded: within a minute, however starved the run.
            let deadline = ContinuousClock.now + .seconds(60)
            while ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(50))
                let response = try await node.client.get("/v1/queue/events")
                pending = (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [[String: Any]] ?? []
                if (pending.first?["attempts"] as? Int ?? 0) > 0 { break }
            }
            #expect(await upstream.deliveries.isEmpty)
            #expect(pending.first?["state"] as? String == "pending")
            let lastError = pending.first?["last_error"] as? String ?? ""
            #expect(lastError.lowercased().contains("certificate") || lastError.contains("handshake"), "\(lastError)")
        }
    }
}
