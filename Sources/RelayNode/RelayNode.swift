import ClusterCore
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOCore
import RelayCore
import RelayStore
import ServiceLifecycle

/// Assembles a node: store, engine, upstream client, peer links and HTTP listeners, as services
/// that shut down in order on SIGTERM: the client listener first, then the engine (deliveries
/// finish, leadership is handed over), then the peer listener the handover needs.
public enum RelayNode {
    /// Builds the node's services, in start order. `onListening` receives the bound client port
    /// (useful with `listen_port: 0`) once every listener of the node is bound; `notifier` is
    /// systemd's, when it runs the node.
    public static func makeServices(
        configuration: RelayConfiguration, environment: NodeEnvironment = .live, notifier: SystemdNotifier? = nil, logger: Logger,
        onListening: @escaping @Sendable (Int) async -> Void = { _ in }
    ) async throws -> [any Service] {
        // First of all: a second process on a live node's directory must not touch its store.
        let lock = try DataDirectoryLock(directory: configuration.dataDirectory)
        let machineLimits = try configuration.stateMachineLimits
        let store = try RelayStore(directory: configuration.dataDirectory)
        let recovered = try await store.recover(limits: machineLimits)
        let metrics = NodeMetrics()
        let clockSkew = ClockSkewMonitor(
            boundMilliseconds: configuration.maxClockSkewMilliseconds, environment: environment, metrics: metrics, logger: logger)
        let upstream = try UpstreamClient(
            configuration: configuration, monotonicMilliseconds: environment.monotonicMilliseconds,
            clockSkew: (clockSkew, environment.wallClockMilliseconds))
        let engine = try RelayEngine(
            recovered: recovered, store: store, upstream: upstream, configuration: configuration, environment: environment,
            metrics: metrics, logger: logger)
        let members = try configuration.members
        let machine = recovered.machine
        logger.info(
            "store opened",
            metadata: [
                "path": "\(store.path)", "pending": "\(machine.pendingCount)", "dead": "\(machine.deadCount)",
                "dedup_keys": "\(machine.dedupKeyCount)", "log_entries": "\(recovered.durable.entries.count)",
                "term": "\(recovered.durable.hardState.term)",
            ])

        var transport: PeerTransport?
        let transfers = SnapshotTransfers()
        var services: [any Service] = []
        let ingestTLS = try configuration.tlsCertificateFile.map { certificate in
            try IngestTLS(certificateFile: certificate, keyFile: configuration.tlsKeyFile ?? "")
        }
        let gatewayListeners = try configuration.gatewayListeners
        let gatewayRules = try configuration.gatewayRules()
        let gate = ListenerGate(
            listeners: 1 + (configuration.peerListenAddress == nil ? 0 : 1) + (ingestTLS == nil ? 0 : 1) + gatewayListeners.count)
        if let peerAddress = configuration.peerListenAddress {
            let peers = try PeerTransport(
                configuration: configuration, engine: engine, environment: environment, transfers: transfers, clockSkew: clockSkew,
                metrics: metrics, logger: logger)
            await engine.connect { peers.send($0) }
            transport = peers
            let router = Router()
            router.add(middleware: PeerClockMiddleware(environment: environment))
            router.add(middleware: JSONErrorMiddleware())
            PeerRoutes(
                engine: engine,
                snapshots: SnapshotReceiver(
                    engine: engine, selfID: configuration.nodeID, limits: machineLimits,
                    dataDirectory: configuration.dataDirectory, transfers: transfers, environment: environment, logger: logger),
                authenticator: PeerAuthenticator(secrets: configuration.clusterSecrets, members: Set(members.map(\.id))),
                clockSkew: clockSkew, environment: environment
            ).register(on: router)
            var server = HTTPServerBuilder { responder in
                PeerListenerChannel(
                    http: HTTP1Channel(responder: responder), prefaceTimeoutMilliseconds: peers.handshakeTimeoutMilliseconds,
                    accept: { await peers.accept($0) })
            }
            if let tls = try PeerTLS.serverConfiguration(configuration) { server = try .tls(server, tlsConfiguration: tls) }
            services.append(
                Application(
                    router: router, server: server,
                    configuration: .init(address: .hostname(peerAddress.host, port: peerAddress.port), serverName: "pdrelay-peer"),
                    onServerRunning: { channel in
                        let port = channel.localAddress?.port ?? peerAddress.port
                        logger.notice(
                            "peer listener up",
                            metadata: [
                                "peer_address": "\(peerAddress.host):\(port)", "node_id": "\(configuration.nodeID)",
                                "tls": "\(configuration.usesPeerTLS ? "mutual" : "off")",
                            ])
                        gate.opened()
                    },
                    logger: logger))
        }
        services.append(
            EngineService(
                engine: engine, upstream: upstream, transport: transport, members: members, gate: gate, onListening: onListening,
                lock: lock,
                notifier: notifier,
                environment: environment, logger: logger))

        let commands = CommandRouter(
            engine: engine, transport: transport, selfID: configuration.nodeID,
            leaderWaitMilliseconds: configuration.leaderWaitMilliseconds,
            // Alone, no balancer retries a request on another node, and this node's queue keeps
            // a held copy ahead of its client's retry and later events.
            requestHoldMilliseconds: configuration.isClustered ? configuration.requestHoldMilliseconds : nil,
            environment: environment)
        let router = Router(context: ClientRequestContext.self)
        router.add(middleware: JSONErrorMiddleware())
        var limits = ValidationLimits.pagerDuty
        limits.maxEventBytes = configuration.maxEventBytes
        let intake = EventIntake(
            commands: commands, environment: environment, limits: limits, dedupKeyTemplates: try configuration.dedupKeyTemplates)
        IngestRoutes(intake: intake, environment: environment, limits: limits, metrics: metrics, logger: logger).register(on: router)
        if let path = configuration.webhookAllowedNetworksFile, !configuration.webhookSecrets.isEmpty {
            WebhookRoutes(
                commands: commands, secrets: configuration.webhookSecrets, allowList: try WebhookAllowListFile(path: path, logger: logger),
                metrics: metrics, logger: logger
            ).register(on: router)
        }
        for listener in gatewayListeners {
            let pipeline = GatewayPipeline(
                gateway: listener.gateway, rules: gatewayRules, intake: intake, environment: environment, metrics: metrics, logger: logger)
            switch listener.transport {
            case .udp: services.append(DatagramGatewayService(listener: listener, pipeline: pipeline, gate: gate, logger: logger))
            case .tcp:
                services.append(
                    StreamGatewayService(
                        listener: listener, pipeline: pipeline, maxMessageBytes: configuration.gatewayMaxMessageBytes, gate: gate,
                        logger: logger))
            }
        }
        let readiness = Readiness(
            engine: engine, members: members, readinessMaxLagEntries: configuration.readinessMaxLagEntries,
            queueHighWaterEvents: configuration.queueHighWaterEvents)
        let operations = OperationsRoutes(
            engine: engine, metrics: metrics, readiness: readiness, members: members, transfers: transfers, clockSkew: clockSkew)
        operations.register(on: router)
        StatusRoutes(operations: operations, engine: engine, metrics: metrics, readiness: readiness, environment: environment)
            .register(on: router)
        QueueRoutes(engine: engine, commands: commands, adminTokens: configuration.adminTokens).register(on: router)
        IncidentRoutes(engine: engine, adminTokens: configuration.adminTokens).register(on: router)
        MaintenanceRoutes(engine: engine, commands: commands, environment: environment, adminTokens: configuration.adminTokens)
            .register(on: router)
        DrillRoutes(engine: engine, commands: commands, adminTokens: configuration.adminTokens).register(on: router)
        services.append(TimedReleaseService(engine: engine, commands: commands, environment: environment, logger: logger))
        HeartbeatRoutes(engine: engine, commands: commands, environment: environment, adminTokens: configuration.adminTokens)
            .register(on: router)
        services.append(HeartbeatMonitorService(engine: engine, commands: commands, environment: environment, logger: logger))
        if let ingestTLS, let port = configuration.tlsListenPort {
            // The same routes over HTTPS; the plain listener stays for health checks on loopback.
            services.append(
                Application(
                    router: router, server: try .tls(.http1(), tlsConfiguration: ingestTLS.serverConfiguration()),
                    configuration: .init(address: .hostname(configuration.listenHost, port: port), serverName: "pdrelay"),
                    onServerRunning: { channel in
                        let port = channel.localAddress?.port ?? port
                        logger.notice(
                            "listening for HTTPS",
                            metadata: [
                                "tls_address": "\(configuration.listenHost):\(port)", "certificate": "\(ingestTLS.servedCertificate)",
                            ])
                        gate.opened()
                    },
                    logger: logger))
            services.append(CertificateReloadService(tls: ingestTLS, logger: logger))
        }
        services.append(
            Application(
                router: router,
                configuration: .init(address: .hostname(configuration.listenHost, port: configuration.listenPort), serverName: "pdrelay"),
                onServerRunning: { channel in
                    let port = channel.localAddress?.port ?? configuration.listenPort
                    logger.notice("listening", metadata: ["address": "\(configuration.listenHost):\(port)"])
                    gate.openedClientListener(port: port)
                },
                logger: logger))
        // Last, so that a graceful shutdown reaches it first: systemd hears STOPPING=1 at once.
        if let notifier { services.append(SystemdNotifyService(notifier: notifier, readiness: readiness, logger: logger)) }
        return services
    }
}

/// Drives the engine's clock: ticks for heartbeats, elections and backoffs. At startup a fresh
/// node of a cluster asks its peers whether the cluster is new; on shutdown the engine drains
/// and hands leadership over before the peer links close.
struct EngineService: Service {
    let engine: RelayEngine
    let upstream: UpstreamClient
    let transport: PeerTransport?
    let members: [ClusterMember]
    /// Opened once every listener is bound: the engine does nothing before.
    let gate: ListenerGate
    /// Told the client port once the gate opens.
    let onListening: @Sendable (Int) async -> Void
    /// Held while the engine runs, released when the process exits.
    let lock: DataDirectoryLock
    /// Pinged from the clock loop below, so that systemd restarts a node whose engine stopped.
    let notifier: SystemdNotifier?
    let environment: NodeEnvironment
    let logger: Logger
    /// The engine's clock resolution: election and backoff deadlines are at most this late.
    static let tickMilliseconds: Int64 = 10

    func run() async throws {
        guard await gate.waitUntilAllOpen() else {
            // A listener failed to bind: the node stops before it ever ticked, so it has
            // neither campaigned nor delivered anything.
            try await upstream.shutdown()
            try await transport?.shutdown()
            return
        }
        logger.debug("listeners bound; starting the engine", metadata: ["lock": "\(lock.path)"])
        if let port = gate.clientPort { await onListening(port) }
        transport?.start()
        // The clock keeps ticking through the drain below: committing the last outcomes and
        // handing leadership over need heartbeats and retransmissions.
        let clock = Task {
            while !Task.isCancelled {
                await engine.tick()
                notifier?.watchdogIfDue(nowMilliseconds: environment.monotonicMilliseconds())
                try? await Task.sleep(for: .milliseconds(Self.tickMilliseconds))
            }
        }
        let decision = Task { await decideDisk() }
        try? await gracefulShutdown()
        decision.cancel()
        logger.info("shutting down: waiting for deliveries in flight")
        await engine.drain()
        await transport?.flush(timeoutMilliseconds: 1_000)
        clock.cancel()
        await clock.value
        try await upstream.shutdown()
        try await transport?.shutdown()
        logger.info("engine stopped; everything undelivered stays queued on disk and on the other nodes")
    }

    /// A fresh node trusts its empty disk only if a majority of the cluster (itself included)
    /// is fresh too: then no election can have counted on a vote it forgot. If any peer has
    /// history, the node is a replacement and will not vote until it has caught up.
    private func decideDisk() async {
        guard let transport, await engine.awaitingDiskDecision else { return }
        let majority = members.count / 2 + 1
        var announced = false
        while !Task.isCancelled {
            var fresh = 1
            for peer in transport.peerIDs {
                guard let status = await transport.status(of: peer) else { continue }
                if !status.isFresh {
                    await engine.diskDecided(clusterIsNew: false)
                    return
                }
                fresh += 1
            }
            if fresh >= majority {
                await engine.diskDecided(clusterIsNew: true)
                return
            }
            if !announced {
                logger.notice("fresh node: waiting for a majority of peers to answer before trusting an empty disk")
                announced = true
            }
            try? await Task.sleep(for: .milliseconds(200))
        }
    }
}
