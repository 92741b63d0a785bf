// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "pdrelay",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "pdrelay", targets: ["pdrelay"]),
        .executable(name: "pd-send", targets: ["pd-send"]),
        .executable(name: "pdrelay-loadtest", targets: ["pdrelay-loadtest"]),
        .executable(name: "pdrelay-sim", targets: ["pdrelay-sim"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.0"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.3.0"),
    ],
    targets: [
        // System SQLite (libsqlite3-dev); `import SQLite3` does not exist on Linux.
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),

        // Pure core: event model, validation, the replicated queue/dedup state machine and the
        // leader-local delivery scheduler. No I/O, no clocks, no randomness.
        .target(
            name: "RelayCore",
            dependencies: [
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "HeapModule", package: "swift-collections"),
            ]
        ),
        // A small seeded generator, so that every pure core and the simulator replay from a seed.
        .target(name: "SeededRandom"),
        // Pure core of the cluster: Raft with pre-vote and a leader lease, no I/O. It knows
        // nothing of the relay: it replicates any `ReplicatedStateMachine`.
        .target(name: "ClusterCore", dependencies: ["SeededRandom"]),
        // The glue that replicates the relay's state machine: its conformance, the per-key
        // upstream fence of a leader's term, and the wire encoding of messages and snapshots.
        .target(
            name: "RelayReplication",
            dependencies: ["ClusterCore", "RelayCore", .product(name: "Crypto", package: "swift-crypto")]
        ),
        // Pure core of the node: every decision of the engine (when to write, send, answer,
        // deliver, give up) as a state machine that returns actions. The node's `RelayEngine`
        // and the simulator both carry out its actions; neither decides anything of its own.
        .target(
            name: "EngineCore",
            dependencies: [
                "ClusterCore", "RelayCore", "RelayReplication", .product(name: "DequeModule", package: "swift-collections"),
            ]
        ),
        // Pure core of the gateways: syslog (RFC 5424, RFC 3164, RFC 6587 framing), SNMP traps
        // (BER through swift-asn1), raw lines, the rules that make events of them, and PagerDuty's
        // webhooks. Bytes in, events or reasons out; the node's listeners do the I/O.
        .target(
            name: "GatewayCore",
            dependencies: [
                "RelayCore", .product(name: "SwiftASN1", package: "swift-asn1"), .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // A seeded, single-threaded world that drives copies of the cluster core through faults.
        .target(
            name: "ClusterSimulator",
            dependencies: [
                "ClusterCore", "EngineCore", "RelayCore", "RelayReplication", "SeededRandom",
                .product(name: "HeapModule", package: "swift-collections"),
            ]
        ),
        // Durable storage of the replicated log and the state machine, one SQLite file per node.
        .target(name: "RelayStore", dependencies: ["CSQLite", "RelayCore", "ClusterCore", "EngineCore", "RelayReplication"]),
        // The node: configuration, the engine (group commit + delivery), HTTP ingest and operations.
        .target(
            name: "RelayNode",
            dependencies: [
                "RelayCore", "ClusterCore", "EngineCore", "RelayReplication", "RelayStore", "GatewayCore",
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        // HTTP client for the relay's own API, shared by pd-send, `pdrelay queue` and the load test.
        .target(
            name: "RelayClient",
            dependencies: [
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "pdrelay",
            dependencies: [
                "RelayNode", "RelayClient", "RelayCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "pdrelay-sim",
            dependencies: [
                "ClusterCore", "ClusterSimulator", "EngineCore", .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "pd-send",
            dependencies: [
                "RelayClient",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Test support, in Tests/Support: nothing here ships. The tests and the load-test harness
        // (loadtest/) both use it.
        //
        // A real HTTP server that plays PagerDuty's Events API: records deliveries, answers as
        // scripted. It shares no code with the relay: it judges events by PagerDuty's documented
        // rules, written out again, and parses them with Foundation.
        .target(
            name: "MockPagerDuty",
            dependencies: [
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Tests/Support/MockPagerDuty"
        ),
        // A pdrelay child process, for the end-to-end tests and the load test.
        .target(name: "RelayProcess", path: "Tests/Support/RelayProcess"),
        // Three pdrelay processes behind HAProxy (via deploy/local-cluster), and a proxy that cuts
        // peer links: for the cluster tests and the failover benchmark.
        .target(
            name: "ClusterHarness",
            dependencies: [
                "RelayProcess",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            path: "Tests/Support/ClusterHarness"
        ),
        // The load-test harness: generator, audit, chaos, reports and charts (loadtest/README.md).
        .target(
            name: "LoadTestKit",
            dependencies: [
                "MockPagerDuty", "RelayProcess", "ClusterHarness", "RelayClient", "RelayCore", "SeededRandom",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "loadtest/Sources/LoadTestKit"
        ),
        .executableTarget(
            name: "pdrelay-loadtest",
            dependencies: [
                "LoadTestKit", "MockPagerDuty", "ClusterHarness",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "loadtest/Sources/pdrelay-loadtest"
        ),
        // libFuzzer targets for the gateways' parsers (scripts/fuzz builds it with
        // --sanitize=fuzzer and -DFUZZING); built plainly, it replays saved inputs.
        .executableTarget(
            name: "pdrelay-fuzz", dependencies: ["GatewayCore", "RelayCore", "RelayReplication", "ClusterCore", "RelayTestSupport"],
            path: "Tests/Fuzz"
        ),
        .target(name: "RelayTestSupport", dependencies: ["RelayReplication"], path: "Tests/Support/RelayTestSupport"),
        .testTarget(name: "RelayCoreTests", dependencies: ["RelayCore", "SeededRandom", "RelayTestSupport"]),
        // testdata/: the protocol transcripts TranscriptTests runs (read from the source tree).
        .testTarget(name: "ClusterCoreTests", dependencies: ["ClusterCore"], exclude: ["testdata"]),
        .testTarget(name: "RelayReplicationTests", dependencies: ["RelayReplication", "ClusterCore", "RelayCore", "RelayTestSupport"]),
        .testTarget(name: "EngineCoreTests", dependencies: ["EngineCore", "ClusterCore", "RelayCore", "RelayReplication"]),
        .testTarget(name: "ClusterSimulatorTests", dependencies: ["ClusterCore", "ClusterSimulator", "EngineCore"]),
        .testTarget(name: "MockPagerDutyTests", dependencies: ["MockPagerDuty"]),
        .testTarget(name: "GatewayCoreTests", dependencies: ["GatewayCore", "RelayCore"]),
        .testTarget(
            name: "LoadTestKitTests", dependencies: ["LoadTestKit", "MockPagerDuty", "RelayCore"]),
        .testTarget(name: "RelayStoreTests", dependencies: ["RelayStore", "ClusterCore", "EngineCore", "RelayCore", "RelayTestSupport"]),
        .testTarget(
            name: "RelayNodeTests",
            dependencies: [
                "RelayNode", "RelayCore", "ClusterCore", "RelayReplication", "MockPagerDuty", "RelayClient", "RelayProcess",
                "RelayTestSupport", "GatewayCore", "ClusterHarness",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .testTarget(
            name: "EndToEndTests",
            dependencies: [
                "MockPagerDuty", "RelayClient", "RelayProcess", "ClusterHarness", "RelayTestSupport",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
    ]
)
