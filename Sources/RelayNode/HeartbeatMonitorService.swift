import Logging
import RelayCore
import ServiceLifecycle

/// Drives `HeartbeatWatch` on this node's monotonic clock and proposes `heartbeatMissed` for
/// each heartbeat whose check-in is overdue. Every node runs it; only the leader's watch
/// returns anything, and a node that becomes leader starts every heartbeat's period afresh.
struct HeartbeatMonitorService: Service {
    let engine: RelayEngine
    let commands: CommandRouter
    let environment: NodeEnvironment
    let logger: Logger
    /// How late after its deadline an alarm may be raised.
    static let pollMilliseconds = 250

    func run() async throws {
        await cancelWhenGracefulShutdown {
            var watch = HeartbeatWatch()
            while !Task.isCancelled {
                // Cancellation, at shutdown, is the sleep's only error: nothing more is proposed.
                do { try await Task.sleep(for: .milliseconds(Self.pollMilliseconds)) } catch { break }
                let (isLeader, heartbeats) = await engine.heartbeatsToWatch()
                for due in watch.due(heartbeats, isLeader: isLeader, nowMilliseconds: environment.monotonicMilliseconds()) {
                    do {
                        let result = try await commands.submit(
                            .heartbeatMissed(name: due.name, checkIns: due.checkIns, atMilliseconds: environment.wallClockMilliseconds()))
                        if case .heartbeatUpdated = result {
                            logger.warning("heartbeat missed: alarm triggered", metadata: ["heartbeat": "\(due.name)"])
                        }
                    } catch {
                        logger.warning(
                            "raising a heartbeat alarm failed; will retry", metadata: ["heartbeat": "\(due.name)", "error": "\(error)"])
                    }
                }
            }
        }
    }
}
