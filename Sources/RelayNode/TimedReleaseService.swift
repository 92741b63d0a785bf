import Logging
import RelayCore
import ServiceLifecycle

/// Releases what waits for a wall-clock time: the held events of maintenance windows that have
/// ended, and digests whose interval has passed. The replicated state machine cannot read a
/// clock, so the leader proposes the release with its own time (`releaseWindows`,
/// `flushDigests`), and the state machine acts only on what is due by then. The next event that
/// arrives after the time does the same, so order holds even before this loop runs. On other
/// nodes the loop only looks.
struct TimedReleaseService: Service {
    let engine: RelayEngine
    let commands: CommandRouter
    let environment: NodeEnvironment
    let logger: Logger
    /// How late after its time a release may start.
    static let pollMilliseconds = 500

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                // Cancellation, at shutdown, is the sleep's only error: nothing more is proposed.
                do { try await Task.sleep(for: .milliseconds(Self.pollMilliseconds)) } catch { break }
                let now = environment.wallClockMilliseconds()
                let due = await engine.timedWorkDue(atWallClock: now)
                if due.heldEvents { await submit(.releaseWindows(atMilliseconds: now)) }
                if due.digests { await submit(.flushDigests(atMilliseconds: now)) }
            }
        }
    }

    private func submit(_ command: RelayCommand) async {
        do {
            switch try await commands.submit(command) {
            case .windowsReleased(let count) where count > 0:
                logger.notice("maintenance window ended: held events released for delivery", metadata: ["released": "\(count)"])
            case .digestsFlushed(let count) where count > 0:
                logger.info("digests sent", metadata: ["digests": "\(count)"])
            default: break
            }
        } catch {
            logger.warning("a timed release failed; will retry", metadata: ["error": "\(error)"])
        }
    }
}
