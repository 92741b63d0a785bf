import Foundation

/// Checks on a TCP port of 127.0.0.1, for harnesses that start servers on chosen ports.
public enum LoopbackPort {
    /// Whether the port can be bound now (nothing listens on it).
    public static func isFree(_ port: Int) -> Bool {
        withSocket(port) { socket, address, length in bind(socket, address, length) == 0 }
    }

    /// Whether something accepts connections on the port.
    public static func accepts(_ port: Int) -> Bool {
        withSocket(port) { socket, address, length in connect(socket, address, length) == 0 }
    }

    private static func withSocket(_ port: Int, _ body: (Int32, UnsafePointer<sockaddr>, socklen_t) -> Bool) -> Bool {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { body(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
    }
}
