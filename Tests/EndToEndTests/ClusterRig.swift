import ClusterHarness
import Foundation
import MockPagerDuty
import NIOConcurrencyHelpers
import RelayClient
import RelayTestSupport
import Testing

/// Three real nodes behind HAProxy, delivering to a recording mock PagerDuty, optionally with a
/// fault-injecting proxy on every peer link.
struct ClusterRig {
    let cluster: LocalCluster
    let upstream: MockPagerDuty
    /// Proxies by (from, to) node, when the rig was started with them.
    let links: [Link: FaultProxy]
    let nodes: [Int: RelayClient]

    struct Link: Hashable {
        let from: Int
        let to: Int
    }

    /// Fast enough to see retries and compaction within a test, and no delivery budget (which
    /// would pace a test's burst to 2 a second); everything else is the default.
    static let settings = [
        "retry_initial_backoff_milliseconds: 50", "retry_max_backoff_milliseconds: 200", "snapshot_threshold_entries: 100",
        "delivery_budget_per_minute: 0",
    ]

    /// `extraSettings` are YAML lines that replace `settings` of the same name or add to them;
    /// `upstreamReply` is how the mock answers every request.
    private static func merged(_ base: [String], _ extra: [String]) -> [String] {
        func name(_ line: String) -> Substring { line.prefix { $0 != ":" } }
        let overridden = Set(extra.map(name))
        return base.filter { !overridden.contains(name($0)) } + extra
    }

    /// `environment` goes to `deploy/local-cluster` (say, a `PDRELAY_ENV_NODE_3`); the nodes
    /// in `readyNodes` must be ready before `body` runs.
    static func run(
        withLinkProxies: Bool = false, extraSettings: [String] = [], upstreamReply: MockPagerDuty.Reply = .accept,
        environment: [String: String] = [:], readyNodes: [Int] = Array(LocalCluster.nodes), _ body: (ClusterRig) async throws -> Void
    ) async throws {
        precondition(RelayLoad.isHeld, "a cluster test's suite needs the RelayLoad.cluster trait")
        let upstream = MockPagerDuty()
        await upstream.setDefaultReply(upstreamReply)
        try await upstream.start()
        let basePort = LocalCluster.freeBasePort()
        let proxyBase = basePort + 50
        var links: [Link: FaultProxy] = [:]
        if withLinkProxies {
            for from in LocalCluster.nodes {
                for to in LocalCluster.nodes where to != from {
                    links[Link(from: from, to: to)] = try await FaultProxy.start(
                        listenPort: proxyBase + 10 * from + to, targetPort: basePort + 10 + to)
                }
            }
        }
        let directory = TestSupport.temporaryDirectory("cluster")
        let cluster = try await LocalCluster(
            packageRoot: TestSupport.packageRoot, binary: TestSupport.binDirectory.appendingPathComponent("pdrelay"),
            directory: directory, upstreamURL: await upstream.baseURL, settings: merged(settings, extraSettings),
            environment: environment, peerProxyBase: withLinkProxies ? proxyBase : nil, basePort: basePort)
        var nodes: [Int: RelayClient] = [:]
        for node in LocalCluster.nodes { nodes[node] = RelayClient(baseURL: cluster.nodeURL(node), timeoutMilliseconds: 2_000) }
        let rig = ClusterRig(cluster: cluster, upstream: upstream, links: links, nodes: nodes)
        do {
            try await rig.waitUntilReady(readyNodes)
            try await body(rig)
        } catch {
            rig.dumpLogs()
            await rig.stop()
            throw error
        }
        await rig.stop()
    }

    private func stop() async {
        await cluster.stop()
        for proxy in links.values { await proxy.stop() }
        for client in nodes.values { try? await client.shutdown() }
        await upstream.stop()
    }

    func dumpLogs() {
        for node in LocalCluster.nodes {
            print("---- node \(node) log (tail) ----\n\(cluster.log(node).split(separator: "\n").suffix(40).joined(separator: "\n"))")
        }
    }

    /// A node that says it leads, other than `excluded` (after `excluded` was killed or cut
    /// off: the one the others elected).
    func leader(otherThan excluded: Int? = nil, timeout: Duration = .seconds(30)) async throws -> Int {
        var found: Int?
        let what = excluded.map { "a leader other than node \($0)" } ?? "a leader"
        try await Self.waitUntil(what, timeout: timeout) {
            for (node, client) in nodes where node != excluded {
                if let view = try? await client.get("/v1/cluster").json, view["role"] as? String == "leader" {
                    found = node
                    return true
                }
            }
            return false
        }
        return found!
    }

    /// Waits until the clients have `count` more acknowledgements than now: traffic flows.
    static func trafficFlows(_ stream: EventStream, count: Int = 20, timeout: Duration = .seconds(30)) async throws {
        let target = stream.acknowledgedCount + count
        try await waitUntil("\(count) more acknowledgements", timeout: timeout) { stream.acknowledgedCount >= target }
    }

    func view(_ node: Int) async -> [String: Any]? { try? await nodes[node]!.get("/v1/cluster").json }

    func waitUntilReady(_ which: some Sequence<Int>, timeout: Duration = .seconds(60)) async throws {
        let deadline = ContinuousClock.now + timeout
        for node in which {
            while (try? await nodes[node]!.get("/readyz").status) != 200 {
                guard ContinuousClock.now < deadline else {
                    throw RigFailure("node \(node) not ready within \(timeout): \(await view(node) ?? [:])")
                }
                try await Task.sleep(for: .milliseconds(50))
            }
        }
    }

    /// Waits until `condition` holds, polling; throws naming `what` when `timeout` runs out.
    static func waitUntil(_ what: String, timeout: Duration = .seconds(60), _ condition: () async -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while !(await condition()) {
            guard ContinuousClock.now < deadline else { throw RigFailure("\(what): not within \(timeout)") }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Cuts (or heals) every link to and from `node`.
    func isolate(_ node: Int, _ cut: Bool) {
        for (link, proxy) in links where link.from == node || link.to == node { proxy.blocked = cut }
    }

    /// Stops carrying bytes on every link of `node` without closing a connection: `.bothWays`
    /// makes each of them half-open, `.fromClient` leaves the connecting side's writes unread.
    /// The peer stream of a pair is dialed by the lower id, through the link from it.
    func stall(_ node: Int, _ stall: FaultProxy.Stall) {
        for (link, proxy) in links where link.from == node || link.to == node { proxy.stalled = stall }
    }

    /// Waits until everything acknowledged has reached the upstream (or the time is up), then
    /// audits what it received.
    func audit(_ stream: EventStream.Outcome, timeout: Duration = .seconds(60)) async -> DeliveryAudit {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let audit = DeliveryAudit(acknowledged: stream.acknowledged, deliveries: await upstream.deliveries)
            if audit.lost.isEmpty { break }
            try? await Task.sleep(for: .milliseconds(100))
        }
        // Let late duplicates, if any, arrive before judging.
        try? await Task.sleep(for: .milliseconds(500))
        return DeliveryAudit(acknowledged: stream.acknowledged, deliveries: await upstream.deliveries)
    }
}

struct RigFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Clients sending through the load balancer as monitoring tools do: each walks keys through
/// trigger → acknowledge → resolve, waits for each `202`, and retries the same bytes on any
/// other answer, as Alertmanager does.
final class EventStream: Sendable {
    struct Outcome: Sendable {
        let acknowledged: Set<DeliveryAudit.Acknowledged>
        /// Answers other than 202 (and connection errors) that clients retried past.
        let failedAttempts: Int
        let gaveUp: Int
    }

    private struct State {
        var acknowledged: Set<DeliveryAudit.Acknowledged> = []
        var failedAttempts = 0
        var gaveUp = 0
        var stopping = false
    }

    private let state = NIOLockedValueBox(State())
    private let tasks: [Task<Void, Never>]
    private let client: RelayClient

    /// `pause` is how long each client waits after an event's 202 before sending the next.
    init(url: String, clients: Int, pause: Duration = .zero, label: String = UUID().uuidString.prefix(6).lowercased()) {
        let client = RelayClient(baseURL: url, timeoutMilliseconds: 20_000, maxConnections: clients)
        self.client = client
        let state = self.state
        tasks = (0..<clients).map { index in
            Task {
                var sequence = 0
                while !state.withLockedValue({ $0.stopping }) {
                    sequence += 1
                    let key = "\(label)-\(index)-\(sequence)"
                    for action in ["trigger", "acknowledge", "resolve"] {
                        guard await Self.send(action, key: key, client: client, state: state) else { break }
                        if pause > .zero { try? await Task.sleep(for: pause) }
                    }
                }
            }
        }
    }

    private static func send(_ action: String, key: String, client: RelayClient, state: NIOLockedValueBox<State>) async -> Bool {
        let body = TestSupport.alert(action, dedupKey: key)
        for _ in 0..<100 {
            if let response = try? await client.post("/v2/enqueue", json: body), response.status == 202 {
                state.withLockedValue { _ = $0.acknowledged.insert(.init(dedupKey: key, action: action)) }
                return true
            }
            state.withLockedValue { $0.failedAttempts += 1 }
            try? await Task.sleep(for: .milliseconds(100))
        }
        state.withLockedValue { $0.gaveUp += 1 }
        return false
    }

    var acknowledgedCount: Int { state.withLockedValue { $0.acknowledged.count } }

    /// Stops the clients after their current event and returns what they saw.
    func stop() async -> Outcome {
        state.withLockedValue { $0.stopping = true }
        for task in tasks { await task.value }
        try? await client.shutdown()
        return state.withLockedValue { Outcome(acknowledged: $0.acknowledged, failedAttempts: $0.failedAttempts, gaveUp: $0.gaveUp) }
    }
}
