import Logging
import ServiceLifecycle

/// Tells systemd (`Type=notify`) when the node is ready and when it is stopping. `READY=1` goes
/// once `Readiness` finds no problem, which in a cluster means the node is in touch with a
/// majority, knows its leader and has caught up: a rolling restart driven by systemd moves to
/// the next zone only then. `STOPPING=1` goes the moment a graceful shutdown begins. The
/// watchdog is pinged from the engine's loop instead (`EngineService`), so that it measures the
/// engine, not this loop.
struct SystemdNotifyService: Service {
    let notifier: SystemdNotifier
    let readiness: Readiness
    let logger: Logger
    /// How often readiness is asked until it holds: a node is ready at most this late.
    static let pollMilliseconds: Int64 = 100

    func run() async throws {
        let ready = Task {
            var lastStatus = ""
            while !Task.isCancelled {
                let problems = await readiness.problems(asLeader: false)
                if problems.isEmpty { return true }
                // STATUS= shows in `systemctl status`: why the unit is still "activating".
                let status = "STATUS=not ready: \(problems.joined(separator: "; "))"
                if status != lastStatus {
                    notifier.notify(status)
                    lastStatus = status
                }
                try? await Task.sleep(for: .milliseconds(Self.pollMilliseconds))
            }
            return false
        }
        await withGracefulShutdownHandler {
            if await ready.value {
                notifier.notify("READY=1\nSTATUS=ready")
                logger.info("told systemd the node is ready")
            }
        } onGracefulShutdown: {
            ready.cancel()
        }
        try? await gracefulShutdown()
        notifier.notify("STOPPING=1\nSTATUS=stopping: finishing deliveries in flight, handing leadership over")
    }
}
