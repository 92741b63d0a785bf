import Foundation
import MockPagerDuty
import RelayProcess
import RelayTestSupport
import Testing

extension OperatorToolTests {
    /// Clients over HTTPS: curl and openssl's s_client, trusting a test CA, against a real node;
    /// then the certificate is renewed and SIGHUP reloads it without dropping a connection.
    @Suite struct IngestTLSTests {
        /// A CA and two server certificates for 127.0.0.1 it signed (serials 0x1001 and 0x1002).
        static func makeCertificates(in directory: String) async throws {
            let script = """
                set -e
                cd '\(directory)'
                openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=pdrelay-test-ca -keyout ca.key -out ca.pem 2>/dev/null
                for n in 1 2; do
                    openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout server-$n.key -out server-$n.csr 2>/dev/null
                    printf 'subjectAltName=IP:127.0.0.1\\n' > san.ext
                    openssl x509 -req -in server-$n.csr -CA ca.pem -CAkey ca.key -set_serial 0x100$n -days 1 \
                        -extfile san.ext -out server-$n.pem 2>/dev/null
                    chmod 600 server-$n.key
                done
                cp server-1.pem server.pem; cp server-1.key server.key; chmod 600 server.key
                """
            let result = try await CommandResult.run("/bin/bash", ["-c", script])
            try #require(result.status == 0, "openssl: \(result.stderr)")
        }

        /// The serial number a new connection is shown, as `openssl x509 -serial` prints it.
        static func servedSerial(port: Int, ca: String) async throws -> String {
            let result = try await CommandResult.run(
                "/bin/bash",
                [
                    "-c",
                    "openssl s_client -connect 127.0.0.1:\(port) -CAfile '\(ca)' -verify_return_error </dev/null 2>/dev/null | openssl x509 -noout -serial",
                ])
            return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        }

        static func curl(port: Int, ca: String, dedupKey: String) async throws -> CommandResult {
            let body = String(decoding: TestSupport.alert(dedupKey: dedupKey), as: UTF8.self)
            return try await CommandResult.run(
                "/usr/bin/curl",
                [
                    "-sS", "--cacert", ca, "--tlsv1.2", "-w", "\n%{http_code}", "-H", "Content-Type: application/json",
                    "--data-binary", body, "https://127.0.0.1:\(port)/v2/enqueue",
                ])
        }

        @Test func curlSendsOverHTTPSAndASIGHUPServesTheRenewedCertificateWithoutDroppingAConnection() async throws {
            let directory = TestSupport.temporaryDirectory("ingest-tls")
            try await Self.makeCertificates(in: directory)
            let ca = directory + "/ca.pem"
            let upstream = MockPagerDuty()
            try await upstream.start()
            let node = try await RelayProcess(
                dataDirectory: directory + "/data", upstreamURL: await upstream.baseURL,
                environment: [
                    "PDRELAY_TLS_LISTEN_PORT": "0", "PDRELAY_TLS_CERTIFICATE_FILE": directory + "/server.pem",
                    "PDRELAY_TLS_KEY_FILE": directory + "/server.key",
                ])
            var port = 0
            try await ClusterRig.waitUntil("the HTTPS listener's address in the log") {
                guard let match = node.log.firstMatch(of: /tls_address=127\.0\.0\.1:(\d+)/) else { return false }
                port = Int(match.1)!
                return true
            }

            let first = try await Self.curl(port: port, ca: ca, dedupKey: "over-https")
            #expect(first.status == 0 && first.stdout.hasSuffix("\n202"), "curl: \(first.stdout) \(first.stderr)")
            #expect(try await Self.servedSerial(port: port, ca: ca) == "serial=1001")

            // A client that keeps its connection open across the reload (s_client on one TLS session).
            let session = Process()
            session.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
            session.arguments = ["s_client", "-connect", "127.0.0.1:\(port)", "-CAfile", ca, "-quiet", "-verify_return_error"]
            let input = Pipe()
            let output = directory + "/session.out"
            FileManager.default.createFile(atPath: output, contents: nil)
            session.standardInput = input
            session.standardOutput = FileHandle(forWritingAtPath: output)
            session.standardError = FileHandle.nullDevice
            try session.run()
            defer { if session.isRunning { session.terminate() } }
            func request(_ dedupKey: String) throws {
                let body = TestSupport.alert(dedupKey: dedupKey)
                let head =
                    "POST /v2/enqueue HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\n\r\n"
                try input.fileHandleForWriting.write(contentsOf: Array(head.utf8) + body)
            }
            func answers() -> Int {
                ((try? String(contentsOfFile: output, encoding: .utf8)) ?? "").matches(of: /HTTP\/1\.1 202/).count
            }
            try request("open-before")
            try await ClusterRig.waitUntil("the open session's first 202") { answers() == 1 }

            // Renewed: the new pair replaces the files, then SIGHUP.
            try Self.install(directory + "/server-2", in: directory)
            kill(node.pid, SIGHUP)
            try await ClusterRig.waitUntil("the reload's log line") { node.log.contains("reloaded the TLS certificate") }

            #expect(try await Self.servedSerial(port: port, ca: ca) == "serial=1002", "a new connection sees the new certificate")
            try request("open-after")
            try await ClusterRig.waitUntil("the open session's second 202, on the connection opened before the reload") { answers() == 2 }
            #expect(session.isRunning, "the open connection was dropped")
            let second = try await Self.curl(port: port, ca: ca, dedupKey: "after-reload")
            #expect(second.stdout.hasSuffix("\n202"), "curl after the reload: \(second.stdout) \(second.stderr)")

            // A renewal gone wrong (a key that does not fit) keeps the working pair and says so.
            try Self.install(directory + "/server-1", in: directory, only: ["key"])
            kill(node.pid, SIGHUP)
            try await ClusterRig.waitUntil("the failed reload's log line") { node.log.contains("cannot reload the TLS certificate") }
            #expect(try await Self.servedSerial(port: port, ca: ca) == "serial=1002")

            let delivered = try await upstream.waitForAccepted(4)
            #expect(Set(delivered.map(\.dedupKey)) == ["over-https", "open-before", "open-after", "after-reload"])
            #expect(await node.terminate() == 0)
            await upstream.stop()
        }

        /// Puts `stem.pem` and `stem.key` where the node reads its pair, as a renewal does.
        static func install(_ stem: String, in directory: String, only kinds: [String] = ["pem", "key"]) throws {
            for kind in kinds {
                let target = directory + "/server." + kind
                try FileManager.default.removeItem(atPath: target)
                try FileManager.default.copyItem(atPath: stem + "." + kind, toPath: target)
                chmod(target, 0o600)
            }
        }
    }
}
