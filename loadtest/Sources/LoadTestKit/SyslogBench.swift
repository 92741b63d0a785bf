import ClusterHarness
import Foundation
import MockPagerDuty
import NIOCore
import NIOPosix
import RelayClient
import RelayProcess

/// Syslog messages per second into durable events: `connections` TCP senders write RFC 5424
/// messages with octet counting (as rsyslog's omfwd and `logger --octet-count` do) to one node's
/// syslog gateway, as fast as the node reads them; the clock stops when that node's
/// `pdrelay_gateway_messages_total{gateway="syslog",outcome="event"}` reaches the count, that is
/// when the last event is on the disks of the node (one) or of a majority (three).
public enum SyslogBench {
    public struct Result: Sendable, CustomStringConvertible {
        public let nodes: Int
        public let messages: Int
        public let seconds: Double
        public var perSecond: Double { Double(messages) / seconds }
        public var description: String {
            String(
                format: "%d node%@: %d syslog messages durable in %.2f s: %.0f messages/s", nodes, nodes == 1 ? "" : "s", messages, seconds,
                perSecond)
        }
    }

    static let rules = """
        syslog:
          rules:
            - name: bench
              match: {app: bench}
              event: {routing_key: R0UTINGKEY0000000000000000000001, dedup_key: "{hostname}/{msgid}"}
        """

    public static func run(packageRoot: URL, binary: String, nodes: Int, messages: Int, connections: Int) async throws -> Result {
        precondition(nodes == 1 || nodes == 3, "one node or three")
        let upstream = MockPagerDuty(recordsBodies: false)
        try await upstream.start()
        defer { Task { await upstream.stop() } }
        let directory = NSTemporaryDirectory() + "pdrelay-syslog-bench-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let rulesPath = directory + "/rules.yaml"
        FileManager.default.createFile(atPath: rulesPath, contents: Data(rules.utf8), attributes: [.posixPermissions: 0o600])
        let environment = BenchmarkSettings.environment.merging([
            "PDRELAY_GATEWAY_RULES_FILE": rulesPath, "PDRELAY_SYSLOG_TCP_ADDRESS": "127.0.0.1:0",
        ]) { _, new in new }

        let log: () -> String
        let url: String
        let stop: () async -> Void
        if nodes == 1 {
            let node = try await RelayProcess(
                binary: URL(fileURLWithPath: binary), dataDirectory: directory + "/data",
                environment: environment.merging(["PDRELAY_UPSTREAM_URL": await upstream.baseURL]) { _, new in new })
            (log, url, stop) = ({ node.log }, node.url, { _ = await node.terminate() })
        } else {
            let cluster = try await LocalCluster(
                packageRoot: packageRoot, binary: URL(fileURLWithPath: binary), directory: directory + "/cluster",
                upstreamURL: await upstream.baseURL, environment: environment)
            (log, url, stop) = ({ cluster.log(1) }, cluster.nodeURL(1), { await cluster.stop() })
        }
        let client = RelayClient(baseURL: url, timeoutMilliseconds: 5_000)
        do {
            var found: Int?
            while found == nil {
                found = log().firstMatch(of: /gateway_address=127\.0\.0\.1:(\d+) setting=syslog_tcp_address/).flatMap { Int($0.1) }
                if found == nil { try await Task.sleep(for: .milliseconds(50)) }
            }
            let port = found!
            // A cluster takes events once a leader is known.
            while (try? await client.get("/readyz").status) != 200 { try await Task.sleep(for: .milliseconds(50)) }
            let started = ContinuousClock.now
            try await withThrowingTaskGroup(of: Void.self) { group in
                for connection in 0..<connections {
                    let share = messages / connections + (connection < messages % connections ? 1 : 0)
                    group.addTask { try await send(share, connection: connection, port: port) }
                }
                try await group.waitForAll()
            }
            while try await durable(client) < messages { try await Task.sleep(for: .milliseconds(20)) }
            let elapsed = ContinuousClock.now - started
            try? await client.shutdown()
            await stop()
            return Result(
                nodes: nodes, messages: messages,
                seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
        } catch {
            try? await client.shutdown()
            await stop()
            throw error
        }
    }

    static func durable(_ client: RelayClient) async throws -> Int {
        let text = try await client.get("/metrics").text
        let line = text.split(separator: "\n").first {
            $0.hasPrefix("pdrelay_gateway_messages_total") && $0.contains(#"gateway="syslog""#) && $0.contains(#"outcome="event""#)
        }
        return line.flatMap { Int($0.split(separator: " ").last ?? "") } ?? 0
    }

    /// One sender: its messages in writes of up to 64 KiB, each message its own incident.
    static func send(_ count: Int, connection: Int, port: Int) async throws {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: port).get()
        var buffer = ByteBuffer()
        for index in 0..<count {
            let message = "<130>1 2026-12-04T12:00:00.000Z plc-\(connection) bench - m\(index) - zone \(index) over temperature"
            buffer.writeString("\(message.utf8.count) \(message)")
            if buffer.readableBytes > 64 * 1_024 || index == count - 1 {
                try await channel.writeAndFlush(buffer).get()
                buffer.clear()
            }
        }
        try await channel.close().get()
    }
}
