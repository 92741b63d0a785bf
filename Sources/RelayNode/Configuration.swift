import Foundation
import RelayCore
import Yams

/// Every setting of a node. Defaults give a working single node with no setup: pdagent's port on
/// loopback, a local data directory, and PagerDuty's US endpoint. A YAML file overrides the
/// defaults and `PDRELAY_*` environment variables override the file. `docs/configuration.md`
/// documents each setting.
public struct RelayConfiguration: Sendable, Equatable {
    public var listenHost = "127.0.0.1"
    public var listenPort = 8081
    public var dataDirectory = "pdrelay-data"
    public var upstreamURL = "https://events.pagerduty.com"
    public var upstreamCAFile: String?
    public var upstreamTimeoutMilliseconds: Int64 = 10_000
    public var deliveryConcurrency = 32
    public var retry = RetryPolicy()
    public var queue = RelayStateMachine.Limits()
    /// Above this many queued events `/readyz` fails, so a load balancer sends elsewhere before
    /// the queue is full.
    public var queueHighWaterEvents = 80_000
    public var maxEventBytes = 512_000
    /// Events written in one SQLite transaction at most.
    public var maxCommitBatchEvents = 2_048
    /// When set, `/v1/queue` requires `Authorization: Bearer <token>`.
    public var adminToken: String?
    public var logLevel = "info"
    public var httpsProxy: String?
    public var noProxy: String?

    public init() {}

    /// Settings whose values are secrets: never logged, and a file holding one must be 0600.
    static let secretSettings: Set<String> = ["admin_token", "https_proxy"]

    public func validate() throws(ConfigurationError) {
        try retry.validate()
        try queue.validate()
        guard (0...65_535).contains(listenPort) else { throw ConfigurationError("listen_port must be between 0 and 65535") }
        guard (100...300_000).contains(upstreamTimeoutMilliseconds) else {
            throw ConfigurationError("upstream_timeout_milliseconds must be between 100 and 300000")
        }
        guard (1...1_024).contains(deliveryConcurrency) else { throw ConfigurationError("delivery_concurrency must be between 1 and 1024") }
        guard (1...queue.maxQueuedEvents).contains(queueHighWaterEvents) else {
            throw ConfigurationError("queue_high_water_events must be between 1 and max_queued_events (\(queue.maxQueuedEvents))")
        }
        guard (1_024...10_000_000).contains(maxEventBytes) else {
            throw ConfigurationError("max_event_bytes must be between 1024 and 10000000")
        }
        guard (1...100_000).contains(maxCommitBatchEvents) else {
            throw ConfigurationError("max_commit_batch_events must be between 1 and 100000")
        }
        guard let url = URL(string: upstreamURL), ["http", "https"].contains(url.scheme ?? ""), url.host != nil else {
            throw ConfigurationError("upstream_url must be an http:// or https:// URL, not '\(upstreamURL)'")
        }
        guard ["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(logLevel) else {
            throw ConfigurationError("log_level must be one of trace, debug, info, notice, warning, error, critical")
        }
        if let caFile = upstreamCAFile, !FileManager.default.isReadableFile(atPath: caFile) {
            throw ConfigurationError("upstream_ca_file \(caFile) does not exist or cannot be read")
        }
        if let token = adminToken, token.count < 16 {
            throw ConfigurationError("admin_token must be at least 16 characters")
        }
        if !Self.isLoopback(listenHost), adminToken == nil {
            throw ConfigurationError(
                "listen_host \(listenHost) is not a loopback address, so the queue API would be open to the network: set admin_token")
        }
    }

    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    /// The settings as a person should see them at startup, secrets masked.
    public var summary: String {
        Self.settings.map { setting in
            let value = setting.read(self) ?? "(unset)"
            return "\(setting.name)=\(Self.secretSettings.contains(setting.name) && setting.read(self) != nil ? "****" : value)"
        }.joined(separator: " ")
    }
}

// MARK: - Loading

extension RelayConfiguration {
    /// Loads defaults, then `file` (if given), then the environment, and validates the result.
    public static func load(file: String?, environment: [String: String]) throws(ConfigurationError) -> RelayConfiguration {
        var configuration = RelayConfiguration()
        if let file { try configuration.apply(file: file) }
        try configuration.apply(environment: environment)
        try configuration.validate()
        return configuration
    }

    mutating func apply(file path: String) throws(ConfigurationError) {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigurationError("cannot read config file \(path): \(error.localizedDescription)")
        }
        let document: Any?
        do {
            document = try Yams.load(yaml: text)
        } catch {
            throw ConfigurationError("config file \(path) is not valid YAML: \(error)")
        }
        guard let document else { return }
        guard let values = document as? [String: Any] else {
            throw ConfigurationError("config file \(path) must be a mapping of setting names to values")
        }
        let secrets = values.keys.filter(Self.secretSettings.contains).sorted()
        if !secrets.isEmpty { try Self.requireOwnerOnly(path, holding: secrets) }
        for (name, value) in values.sorted(by: { $0.key < $1.key }) {
            try set(name, to: "\(value)", from: "config file \(path)")
        }
    }

    mutating func apply(environment: [String: String]) throws(ConfigurationError) {
        for setting in Self.settings {
            if let value = environment[setting.environmentName] { try set(setting.name, to: value, from: setting.environmentName) }
        }
        httpsProxy = httpsProxy ?? environment["HTTPS_PROXY"] ?? environment["https_proxy"]
        noProxy = noProxy ?? environment["NO_PROXY"] ?? environment["no_proxy"]
    }

    /// A secret in a file others can read is a secret leaked: refuse, and say how to fix it.
    static func requireOwnerOnly(_ path: String, holding secrets: [String]) throws(ConfigurationError) {
        let mode: Int
        do {
            mode = (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int) ?? 0
        } catch {
            throw ConfigurationError("cannot read the permissions of \(path): \(error.localizedDescription)")
        }
        guard mode & 0o077 == 0 else {
            throw ConfigurationError(
                "config file \(path) holds secrets (\(secrets.joined(separator: ", "))) but its mode is \(String(mode, radix: 8)), readable by group or others; run: chmod 600 \(path)"
            )
        }
    }

    private mutating func set(_ name: String, to value: String, from source: String) throws(ConfigurationError) {
        guard let setting = Self.settings.first(where: { $0.name == name }) else {
            throw ConfigurationError("unknown setting '\(name)' in \(source); see docs/configuration.md")
        }
        guard setting.write(&self, value) else {
            throw ConfigurationError("setting '\(name)' in \(source) has an invalid value")
        }
    }
}

// MARK: - The settings table

/// One setting: its name in files, how to read it back and how to parse it from text.
struct Setting: Sendable {
    let name: String
    let read: @Sendable (RelayConfiguration) -> String?
    let write: @Sendable (inout RelayConfiguration, String) -> Bool

    var environmentName: String { "PDRELAY_" + name.uppercased() }

    static func string(_ name: String, _ path: WritableKeyPath<RelayConfiguration, String> & Sendable) -> Setting {
        Setting(
            name: name, read: { $0[keyPath: path] },
            write: {
                $0[keyPath: path] = $1; return true
            })
    }

    static func optional(_ name: String, _ path: WritableKeyPath<RelayConfiguration, String?> & Sendable) -> Setting {
        Setting(
            name: name, read: { $0[keyPath: path] },
            write: {
                $0[keyPath: path] = $1.isEmpty ? nil : $1; return true
            })
    }

    static func integer<Value: FixedWidthInteger & Sendable>(
        _ name: String, _ path: WritableKeyPath<RelayConfiguration, Value> & Sendable
    ) -> Setting {
        Setting(
            name: name, read: { String($0[keyPath: path]) },
            write: { configuration, text in
                guard let value = Value(text.replacingOccurrences(of: "_", with: "")) else { return false }
                configuration[keyPath: path] = value
                return true
            })
    }
}

extension RelayConfiguration {
    static let settings: [Setting] = [
        .string("listen_host", \.listenHost),
        .integer("listen_port", \.listenPort),
        .string("data_directory", \.dataDirectory),
        .string("upstream_url", \.upstreamURL),
        .optional("upstream_ca_file", \.upstreamCAFile),
        .integer("upstream_timeout_milliseconds", \.upstreamTimeoutMilliseconds),
        .integer("delivery_concurrency", \.deliveryConcurrency),
        .integer("retry_initial_backoff_milliseconds", \.retry.initialBackoffMilliseconds),
        .integer("retry_max_backoff_milliseconds", \.retry.maxBackoffMilliseconds),
        .integer("retry_max_attempts", \.retry.maxAttempts),
        .integer("max_queued_events", \.queue.maxQueuedEvents),
        .integer("queue_high_water_events", \.queueHighWaterEvents),
        .integer("max_dedup_keys", \.queue.maxDedupKeys),
        .integer("duplicate_window_milliseconds", \.queue.duplicateWindowMilliseconds),
        .integer("max_event_bytes", \.maxEventBytes),
        .integer("max_commit_batch_events", \.maxCommitBatchEvents),
        .optional("admin_token", \.adminToken),
        .string("log_level", \.logLevel),
        .optional("https_proxy", \.httpsProxy),
        .optional("no_proxy", \.noProxy),
    ]
}
