import Logging
import RelayCore
import ServiceLifecycle

/// Releases what maintenance windows held once they end. Windows end by the wall clock, which
/// the replicated state machine cannot read, so the leader proposes the release with its own
/// time (`releaseWindows`); the state machine releases only windows that ended by then. Any
/// event for a held key that arrives after the end releases them as well, so order holds even
/// before this loop runs. On other nodes the loop only looks.
struct MaintenanceReleaseService: Service {
    let engine: RelayEngine
    let commands: CommandRouter
    let environment: NodeEnvironment
    let logger: Logger
    /// How late after a window's end its held events may start to go.
    static let pollMilliseconds = 500

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(Self.pollMilliseconds))
                let now = environment.wallClockMilliseconds()
                guard await engine.heldEventsDue(atWallClock: now) else { continue }
                do {
                    if case .windowsReleased(let count) = try await commands.submit(.releaseWindows(atMilliseconds: now)), count > 0 {
                        logger.notice("maintenance window ended: held events released for delivery", metadata: ["released": "\(count)"])
                    }
                } catch {
                    logger.warning("releasing held events failed; will retry", metadata: ["error": "\(error)"])
                }
            }
        }
    }
}
