import NIOConcurrencyHelpers

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// systemd's notify protocol, spoken directly (sd_notify(3)): one datagram of `KEY=VALUE`
/// lines to the Unix socket named by `$NOTIFY_SOCKET`. No libsystemd, so the static binary
/// needs nothing beyond libc. Without `$NOTIFY_SOCKET` (not run by systemd) every call does
/// nothing.
///
/// `WATCHDOG_USEC` (set by systemd when the unit has `WatchdogSec=`) asks for `WATCHDOG=1` at
/// least that often; `watchdogIfDue` sends it at half the interval, as sd_watchdog_enabled(3)
/// recommends, so one late tick does not get the node killed.
public final class SystemdNotifier: Sendable {
    private let address: [UInt8]
    /// Half of `WATCHDOG_USEC`, in milliseconds; nil when systemd watches nothing.
    public let watchdogPingMilliseconds: Int64?
    private let lastWatchdogPing = NIOLockedValueBox<Int64?>(nil)

    /// The longest socket path a `sockaddr_un` holds.
    static let maxAddressBytes = 107
    /// systemd's watchdog interval may be far longer, but pinging more often than every 10 ms
    /// would cost more than it tells.
    static let minWatchdogPingMilliseconds: Int64 = 10

    /// Nil when the environment names no usable socket.
    public init?(environment: [String: String], processID: Int32 = getpid()) {
        guard let path = environment["NOTIFY_SOCKET"], !path.isEmpty, path.utf8.count <= Self.maxAddressBytes,
            path.hasPrefix("/") || path.hasPrefix("@")
        else { return nil }
        var bytes = Array(path.utf8)
        // "@name" is Linux's abstract namespace: the address starts with a NUL byte.
        if bytes[0] == UInt8(ascii: "@") { bytes[0] = 0 }
        address = bytes
        // WATCHDOG_PID, when set, names the process systemd watches; a child must not ping for it.
        let watchedHere = environment["WATCHDOG_PID"].map { Int32($0) == processID } ?? true
        if watchedHere, let text = environment["WATCHDOG_USEC"], let microseconds = Int64(text), microseconds > 0 {
            watchdogPingMilliseconds = max(Self.minWatchdogPingMilliseconds, microseconds / 2_000)
        } else {
            watchdogPingMilliseconds = nil
        }
    }

    /// Sends one notification, such as "READY=1\nSTATUS=...". A failure is returned, not thrown:
    /// a supervisor that went away must not stop the node.
    @discardableResult
    public func notify(_ state: String) -> Bool {
        let descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        var socketAddress = sockaddr_un()
        socketAddress.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &socketAddress.sun_path) { path in
            for (index, byte) in address.enumerated() { path[index] = byte }
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + address.count)
        let payload = Array(state.utf8)
        let sent = withUnsafePointer(to: &socketAddress) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                payload.withUnsafeBytes { sendto(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL), address, length) }
            }
        }
        return sent == payload.count
    }

    /// Called from the engine's own loop: pings the watchdog when half its interval has passed
    /// since the last ping. A wedged engine stops calling this, and systemd restarts the node.
    public func watchdogIfDue(nowMilliseconds: Int64) {
        guard let interval = watchdogPingMilliseconds else { return }
        let due = lastWatchdogPing.withLockedValue { last in
            guard last.map({ nowMilliseconds - $0 >= interval }) ?? true else { return false }
            last = nowMilliseconds
            return true
        }
        if due { notify("WATCHDOG=1") }
    }
}
