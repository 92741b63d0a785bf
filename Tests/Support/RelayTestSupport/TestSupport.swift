import Foundation

/// Paths and builders shared by the test targets.
public enum TestSupport {
    /// The package root, found from this file's path.
    public static let packageRoot = URL(fileURLWithPath: #filePath)  // Tests/Support/RelayTestSupport/TestSupport.swift
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// `Tests/Fixtures`: PagerDuty's OpenAPI files and captured client requests, kept in the
    /// repository so that a plain clone tests itself.
    public static let fixtures = packageRoot.appendingPathComponent("Tests/Fixtures")

    public static func fixtureBytes(_ relativePath: String) throws -> [UInt8] {
        Array(try Data(contentsOf: fixtures.appendingPathComponent(relativePath)))
    }

    /// A 32-character alphanumeric routing key, distinct per `index`.
    public static func routingKey(_ index: Int = 0) -> String {
        let digits = String(index)
        return "routingkey" + String(repeating: "0", count: 22 - digits.count) + digits
    }

    /// A v2 alert event as a client would send it.
    public static func alert(
        _ action: String = "trigger", routingKey: String = routingKey(), dedupKey: String? = nil, summary: String = "disk full on db-1",
        extra: [String: Any] = [:]
    ) -> [UInt8] {
        var event: [String: Any] = ["routing_key": routingKey, "event_action": action]
        if let dedupKey { event["dedup_key"] = dedupKey }
        if action == "trigger" { event["payload"] = ["summary": summary, "source": "db-1", "severity": "critical"] }
        event.merge(extra) { _, new in new }
        return Array(try! JSONSerialization.data(withJSONObject: event, options: [.sortedKeys]))
    }

    /// A fresh directory under the system temp directory.
    public static func temporaryDirectory(_ label: String = "pdrelay-test") -> String {
        let path = NSTemporaryDirectory() + "\(label)-\(UUID().uuidString.prefix(8))"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// The folder holding the built executables: the test bundle sits beside them.
    public static let binDirectory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()

    public static func json(_ bytes: [UInt8]) -> [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any]
    }
}
