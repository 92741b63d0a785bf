import Foundation
import MockPagerDuty
import RelayProcess
import RelayTestSupport
import Testing

/// `pd-send` and `pdrelay queue`, run as processes against a running relay, as an operator would.
@Suite(.serialized, RelayLoad.node) struct CommandLineTests {
    let key = TestSupport.routingKey(7)

    @Test func pdSendTakesPdagentsFlagsAndReportsTheIncidentKey() async throws {
        let upstream = MockPagerDuty()
        try await upstream.start()
        let relay = try await RelayProcess(
            dataDirectory: TestSupport.temporaryDirectory("pd-send") + "/data", upstreamURL: await upstream.baseURL)

        let trigger = try await CommandResult.run(
            "pd-send",
            [
                "-k", key, "-t", "trigger", "-d", "disk full on db-1", "-i", "db-1", "-c", "nagios", "-u", "https://nagios.example", "-f",
                "host=db-1", "-f",
                "mount=/var", "--severity", "critical", "--component", "disk", "--url", relay.url,
            ])
        #expect(trigger.status == 0, "\(trigger.stderr)")
        #expect(trigger.stdout == "Event processed. Incident Key: db-1\n")

        let keyless = try await CommandResult.run("pd-send", ["-k", key, "-t", "trigger", "-d", "no key given", "--url", relay.url])
        #expect(keyless.status == 0)
        #expect(keyless.stdout.range(of: #"^Event processed\. Incident Key: [0-9a-f]{32}\n$"#, options: .regularExpression) != nil)

        let quiet = try await CommandResult.run("pd-send", ["-k", key, "-t", "resolve", "-i", "db-1", "-q", "--url", relay.url])
        #expect(quiet.status == 0)
        #expect(quiet.stdout.isEmpty)

        let delivered = try await upstream.waitForAccepted(3)
        let first = try #require(delivered.first { $0.dedupKey == "db-1" && $0.action == "trigger" }?.json)
        let payload = try #require(first["payload"] as? [String: Any])
        #expect(payload["custom_details"] as? [String: String] == ["host": "db-1", "mount": "/var"])
        #expect(payload["severity"] as? String == "critical")
        #expect(payload["component"] as? String == "disk")
        #expect(first["client"] as? String == "nagios")
        #expect(delivered.allSatisfy { $0.validationErrors.isEmpty })

        let refused = try await CommandResult.run("pd-send", ["-k", "tooshort", "-t", "trigger", "-d", "x", "--url", relay.url])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("HTTP 400"))
        #expect(refused.stderr.contains("Length of 'routing_key' is incorrect (should be 32 characters)"))

        let usage = try await CommandResult.run("pd-send", ["-k", key, "-t", "resolve", "--url", relay.url])
        #expect(usage.status != 0)
        #expect(usage.stderr.contains("-i/--incident-key is required to resolve"))

        let unreachable = try await CommandResult.run(
            "pd-send",
            ["-k", key, "-t", "trigger", "-d", "x", "--retries", "0", "--timeout-milliseconds", "1000", "--url", "http://127.0.0.1:9"])
        #expect(unreachable.status == 1)
        #expect(unreachable.stderr.contains("cannot reach the relay at http://127.0.0.1:9"))

        #expect(await relay.terminate() == 0)
        await upstream.stop()
    }

    @Test func pdrelayQueueShowsRetriesAndPurgesWhatIsQueued() async throws {
        let upstream = MockPagerDuty()
        try await upstream.start()
        await upstream.script([.status(400)])
        await upstream.setDefaultReply(.status(503))
        let token = "queue-test-admin-token"
        let relay = try await RelayProcess(
            dataDirectory: TestSupport.temporaryDirectory("queue") + "/data", upstreamURL: await upstream.baseURL,
            environment: ["PDRELAY_ADMIN_TOKEN": token])
        let admin = ["--url", relay.url, "--admin-token", token]
        func queue(_ arguments: [String]) async throws -> CommandResult {
            try await CommandResult.run("pdrelay", ["queue"] + arguments + admin)
        }

        #expect(
            try await CommandResult.run("pd-send", ["-k", key, "-t", "trigger", "-d", "bad one", "-i", "dead-1", "--url", relay.url]).status
                == 0)
        _ = try await waitFor { try await queue(["list", "--state", "dead"]).stdout.contains("dead-1") }
        #expect(
            try await CommandResult.run("pd-send", ["-k", key, "-t", "trigger", "-d", "stuck", "-i", "stuck-1", "--url", relay.url]).status
                == 0)
        _ = try await waitFor { try await queue(["list", "--state", "pending"]).stdout.contains("stuck-1") }

        let status = try await queue(["status"])
        #expect(status.status == 0)
        #expect(status.stdout.contains("pending: 1  dead: 1"))
        #expect(status.stdout.contains("ro…0007"))
        #expect(!status.stdout.contains(key), "the routing key must be masked")

        let dead = try await queue(["list", "--state", "dead"])
        #expect(dead.stdout.contains("EVENT"))
        let deadLine = try #require(dead.stdout.split(separator: "\n").first { $0.contains("dead-1") })
        #expect(deadLine.contains("PagerDuty rejected the event: HTTP 400"))
        let number = try #require(deadLine.split(separator: " ").first.map(String.init))

        let show = try await queue(["show", number])
        #expect(show.status == 0)
        #expect(show.stdout.contains("dedup key: dead-1"))
        #expect(show.stdout.contains("dead_lettered  400"))
        #expect(show.stdout.contains(#""summary":"bad one""#))
        #expect(!show.stdout.contains(key), "the routing key in the body must be masked")

        let missing = try await queue(["show", "999999"])
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("HTTP 404"))

        let retry = try await queue(["retry", "--event", number])
        #expect(retry.status == 0)
        #expect(retry.stdout.contains("retried 1 dead event(s)"))
        _ = try await waitFor { try await queue(["status"]).stdout.contains("pending: 2  dead: 0") }

        let unconfirmed = try await queue(["purge", "--all"])
        #expect(unconfirmed.status != 0)
        #expect(unconfirmed.stderr.contains("add --yes"))
        let purge = try await queue(["purge", "--dedup-key", "stuck-1", "--yes"])
        #expect(purge.stdout.contains("purged 1 event(s)"))
        let purgeAll = try await queue(["purge", "--all", "--yes"])
        #expect(purgeAll.stdout.contains("purged 1 event(s)"))
        #expect(try await queue(["list"]).stdout == "no events\n")

        let wrongToken = try await CommandResult.run(
            "pdrelay", ["queue", "status", "--url", relay.url, "--admin-token", "wrong-token-wrong"])
        #expect(wrongToken.status == 1)
        #expect(wrongToken.stderr.contains("HTTP 401"))

        #expect(await relay.terminate() == 0)
        await upstream.stop()
    }

    @Test func serveRefusesAConfigFileThatLeaksSecrets() async throws {
        let directory = TestSupport.temporaryDirectory("leaky")
        let path = directory + "/pdrelay.yaml"
        try "admin_token: correct-horse-battery-staple\n".write(toFile: path, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o640], ofItemAtPath: path)
        let result = try await CommandResult.run("pdrelay", ["serve", "--config", path])
        #expect(result.status == 2)
        #expect(result.stderr.contains("refusing to start"))
        #expect(result.stderr.contains("chmod 600 \(path)"))
        #expect(!result.stderr.contains("correct-horse"))
    }

    /// Polls `condition` until it holds, for up to 10 s.
    func waitFor(_ condition: () async throws -> Bool) async throws -> Bool {
        for _ in 0..<200 {
            if try await condition() { return true }
            try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("condition not met within 10 s")
        return false
    }
}
