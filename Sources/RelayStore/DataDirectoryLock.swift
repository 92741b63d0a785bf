import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// An exclusive `flock` on `DIR/pdrelay.lock`, held for the life of the process: two nodes on
/// one data directory would both lead, in their own terms, and deliver the same queue. The
/// kernel drops the lock when the process exits, `kill -9` included, so a stale lock file never
/// blocks a restart. The file holds the owner's PID, for the refusal message.
public final class DataDirectoryLock: Sendable {
    public static let fileName = "pdrelay.lock"
    public let path: String
    private let descriptor: Int32

    /// Takes the lock or throws at once, naming the directory and the PID that holds it.
    public init(directory: String) throws(StoreError) {
        do {
            try FileManager.default.createDirectory(
                atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw StoreError("cannot create the data directory \(directory): \(error.localizedDescription)")
        }
        path = (directory as NSString).appendingPathComponent(Self.fileName)
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw StoreError("cannot open \(path): \(String(cString: strerror(errno)))") }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            let holder = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
            close(descriptor)
            throw StoreError(
                "the data directory \(directory) is in use by another pdrelay process (pid \(holder.flatMap { $0.isEmpty ? nil : $0 } ?? "unknown")); two processes on one store would both deliver its queue"
            )
        }
        let pid = "\(getpid())\n"
        _ = ftruncate(descriptor, 0)
        _ = pid.withCString { write(descriptor, $0, strlen($0)) }
        self.descriptor = descriptor
    }

    deinit {
        flock(descriptor, LOCK_UN)
        close(descriptor)
    }
}
