import Hummingbird
import Logging
import NIOCore
import RelayCore
import RelayStore
import ServiceLifecycle

/// Assembles a node: store, engine, upstream client and HTTP routes, as one Hummingbird
/// application whose services shut down in order on SIGTERM (HTTP first, then deliveries).
public enum RelayNode {
    /// Builds the node. `onListening` receives the bound port (useful with `listen_port: 0`).
    public static func makeApplication(
        configuration: RelayConfiguration, environment: NodeEnvironment = .live, logger: Logger,
        onListening: @escaping @Sendable (Int) async -> Void = { _ in }
    ) async throws -> some ApplicationProtocol {
        let store = try RelayStore(directory: configuration.dataDirectory)
        let contents = try await store.load()
        let upstream = try UpstreamClient(configuration: configuration)
        let metrics = NodeMetrics()
        let engine = RelayEngine(
            contents: contents, store: store, upstream: upstream, configuration: configuration, environment: environment,
            metrics: metrics, logger: logger)
        logger.info(
            "store opened",
            metadata: [
                "path": "\(store.path)", "pending": "\(contents.events.filter { $0.state == .pending }.count)",
                "dead": "\(contents.events.filter { $0.state == .dead }.count)", "dedup_keys": "\(contents.dedupEntries.count)",
            ])

        let router = Router()
        router.add(middleware: JSONErrorMiddleware())
        var limits = ValidationLimits.pagerDuty
        limits.maxEventBytes = configuration.maxEventBytes
        IngestRoutes(engine: engine, environment: environment, limits: limits, metrics: metrics).register(on: router)
        OperationsRoutes(engine: engine, metrics: metrics, queueHighWaterEvents: configuration.queueHighWaterEvents).register(on: router)
        QueueRoutes(engine: engine, adminToken: configuration.adminToken).register(on: router)

        return Application(
            router: router,
            configuration: .init(address: .hostname(configuration.listenHost, port: configuration.listenPort), serverName: "pdrelay"),
            services: [DeliveryService(engine: engine, upstream: upstream, logger: logger)],
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? configuration.listenPort
                logger.info("listening", metadata: ["address": "\(configuration.listenHost):\(port)"])
                await onListening(port)
            },
            logger: logger)
    }
}

/// Wakes the engine when a backoff ends. New events and finished attempts start deliveries
/// themselves; this loop only covers timers. On shutdown it lets in-flight attempts finish.
struct DeliveryService: Service {
    let engine: RelayEngine
    let upstream: UpstreamClient
    let logger: Logger
    /// The longest the loop sleeps, so a backoff that ends earlier than the one it slept for
    /// is at most this late.
    static let maxSleepMilliseconds: Int64 = 50

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                let wake = await engine.startDeliveries() ?? Self.maxSleepMilliseconds
                try? await Task.sleep(for: .milliseconds(min(max(wake, 1), Self.maxSleepMilliseconds)))
            }
        }
        logger.info("shutting down: waiting for deliveries in flight")
        await engine.drain()
        try await upstream.shutdown()
        logger.info("deliveries stopped; everything undelivered stays queued on disk")
    }
}
