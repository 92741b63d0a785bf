import Foundation
import Logging
import MockPagerDuty
import RelayClient
import RelayNode
import RelayTestSupport
import ServiceLifecycle

/// A node running in this process on a free loopback port, with its own data directory,
/// delivering to a real mock PagerDuty.
struct TestNode {
    let client: RelayClient
    let upstream: MockPagerDuty
    let configuration: RelayConfiguration

    /// Fast timings so retries show within a test, and no delivery budget (tests of budgets set
    /// one); everything else is the default.
    static func configuration(upstream: MockPagerDuty) async -> RelayConfiguration {
        var configuration = RelayConfiguration()
        configuration.listenPort = 0
        configuration.dataDirectory = TestSupport.temporaryDirectory("node")
        configuration.upstreamURL = await upstream.baseURL
        configuration.upstreamTimeoutMilliseconds = 2_000
        configuration.retry = .init(initialBackoffMilliseconds: 50, maxBackoffMilliseconds: 200, maxAttempts: 20)
        configuration.deliveryBudgetPerMinute = 0
        // As with freezes (`starvationTolerant`): a starved test process is not a load balancer
        // that has retried the request elsewhere.
        configuration.requestHoldMilliseconds = 30_000
        return configuration
    }

    /// The live environment, except that a clock gap of under 30 s is not taken for a freeze:
    /// these nodes share a process with simulations that hold its threads for seconds, and a
    /// node that took that for a freeze would refuse its requests (`FreezeTests` keeps 1 s).
    static let starvationTolerant: NodeEnvironment = {
        var environment = NodeEnvironment.live
        environment.freezeThresholdMilliseconds = 30_000
        return environment
    }()

    /// Starts a mock upstream and a node, runs `body`, and stops both.
    static func run<T: Sendable>(
        configure: (inout RelayConfiguration) -> Void = { _ in }, upstream: MockPagerDuty? = nil,
        environment: NodeEnvironment = TestNode.starvationTolerant,
        _ body: (TestNode) async throws -> T
    ) async throws -> T {
        precondition(RelayLoad.isHeld, "a suite that runs a TestNode needs the RelayLoad.node trait")
        let upstream = upstream ?? MockPagerDuty()
        if await upstream.port == 0 { try await upstream.start() }
        var configuration = await configuration(upstream: upstream)
        configure(&configuration)
        try configuration.validate()
        var logger = Logger(label: "test-node")
        // Retries and dead letters are what these tests provoke; only worse is worth printing.
        logger.logLevel = .critical
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let services = try await RelayNode.makeServices(configuration: configuration, environment: environment, logger: logger) {
            continuation.yield($0)
        }
        let group = ServiceGroup(services: services, gracefulShutdownSignals: [], logger: logger)
        let running = Task { try await group.run() }
        var port = 0
        for await bound in ports {
            port = bound
            break
        }
        let client = RelayClient(baseURL: "http://127.0.0.1:\(port)", adminToken: configuration.adminToken)
        let node = TestNode(client: client, upstream: upstream, configuration: configuration)
        do {
            let result = try await body(node)
            await node.stop(group, running)
            return result
        } catch {
            await node.stop(group, running)
            throw error
        }
    }

    private func stop(_ group: ServiceGroup, _ running: Task<Void, any Error>) async {
        try? await client.shutdown()
        await group.triggerGracefulShutdown()
        _ = try? await running.value
        await upstream.stop()
    }

    @discardableResult
    func send(_ body: [UInt8], path: String = "/v2/enqueue") async throws -> RelayResponse {
        try await client.post(path, json: body)
    }
}
