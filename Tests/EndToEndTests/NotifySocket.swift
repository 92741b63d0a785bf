import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// systemd's end of the notify protocol, for a test: a Unix datagram socket bound at a path,
/// read without blocking. Written from sd_notify(3), not from the node's `SystemdNotifier`.
final class NotifySocket: @unchecked Sendable {
    let path: String
    private let descriptor: Int32

    init(directory: String) throws {
        path = directory + "/notify.sock"
        descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard descriptor >= 0 else { throw NotifySocketFailure("socket: errno \(errno)") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { throw NotifySocketFailure("path too long: \(path)") }
        withUnsafeMutableBytes(of: &address.sun_path) { for (index, byte) in bytes.enumerated() { $0[index] = byte } }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0 else { throw NotifySocketFailure("bind \(path): errno \(errno)") }
    }

    /// Every datagram that has arrived, oldest first.
    func receive() -> [String] {
        var messages: [String] = []
        var buffer = [UInt8](repeating: 0, count: 4_096)
        while true {
            let count = recv(descriptor, &buffer, buffer.count, 0)
            guard count > 0 else { return messages }
            messages.append(String(decoding: buffer[0..<count], as: UTF8.self))
        }
    }

    /// Waits (polling) for a datagram containing the line `line`; returns the messages seen
    /// before it, and it.
    func waitFor(line: String, timeout: Duration) async throws -> (before: [String], message: String) {
        let deadline = ContinuousClock.now + timeout
        var before: [String] = []
        while ContinuousClock.now < deadline {
            for message in receive() {
                if message.split(separator: "\n").contains(Substring(line)) { return (before, message) }
                before.append(message)
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw NotifySocketFailure("no \(line) within \(timeout); got: \(before)")
    }

    deinit {
        close(descriptor)
        unlink(path)
    }
}

struct NotifySocketFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
