import ArgumentParser
import Foundation
import Hummingbird
import Logging
import RelayNode
import ServiceLifecycle

@main
struct PDRelay: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pdrelay",
        abstract: "A highly available relay for PagerDuty events.",
        version: RelayVersion.current,
        subcommands: [Serve.self, Status.self, Drill.self, Queue.self, Maintenance.self],
        defaultSubcommand: Serve.self)
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a relay node.",
        discussion: """
            With no options: one node on 127.0.0.1:8081 with its store in ./pdrelay-data, delivering to \
            https://events.pagerduty.com. A YAML config file overrides the defaults, and PDRELAY_* environment \
            variables override the file (see docs/configuration.md). SIGTERM or SIGINT shuts down gracefully.
            """)

    @Option(name: [.short, .long], help: "YAML config file; must be mode 0600 if it holds secrets.")
    var config: String?

    func run() async throws {
        let configuration: RelayConfiguration
        do {
            configuration = try RelayConfiguration.load(file: config, environment: ProcessInfo.processInfo.environment)
        } catch {
            FileHandle.standardError.write(Data("pdrelay: refusing to start: \(error)\n".utf8))
            throw ExitCode(2)
        }
        let logLevel = Logger.Level(rawValue: configuration.logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = logLevel
            return handler
        }
        let logger = Logger(label: "pdrelay")
        logger.info("starting pdrelay \(RelayVersion.current)", metadata: ["settings": "\(configuration.summary)"])
        do {
            let services = try await RelayNode.makeServices(
                configuration: configuration, notifier: SystemdNotifier(environment: ProcessInfo.processInfo.environment), logger: logger)
            try await ServiceGroup(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger).run()
        } catch {
            // One line a supervisor's log shows: the store is locked, a port is taken, a file
            // is unreadable. Exiting non-zero lets the supervisor restart or alert.
            FileHandle.standardError.write(Data("pdrelay: stopped: \(Self.describe(error))\n".utf8))
            throw ExitCode(1)
        }
        logger.info("stopped")
    }

    /// NIO's bind failure reads "bind(descriptor:ptr:bytes:): Address already in use (errno:
    /// 98)"; say which listener and address instead.
    private static func describe(_ error: any Error) -> String {
        let text = "\(error)"
        return text.contains("Address already in use") ? "cannot listen: an address is already in use (\(text))" : text
    }
}
