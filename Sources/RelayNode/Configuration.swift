import ClusterCore
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
    /// An HTTPS listener for clients on `listen_host`, besides the plain one, when set with
    /// `tls_certificate_file` and `tls_key_file` (mode 0600). SIGHUP reloads both files.
    public var tlsListenPort: Int?
    public var tlsCertificateFile: String?
    public var tlsKeyFile: String?
    public var dataDirectory = "pdrelay-data"
    public var upstreamURL = "https://events.pagerduty.com"
    public var upstreamCAFile: String?
    /// Each upstream request is cancelled hard at this time, alone or in a cluster. PagerDuty
    /// answers in well under a second; a proxy or a distant zone can take several. In a cluster,
    /// a key whose request was out at a failover waits about this long (docs/protocol.md).
    public var upstreamTimeoutMilliseconds: Int64 = 10_000
    /// Attempts in flight at once, across keys. Each attempt waits for two commits (its intent,
    /// then its outcome), on a single node too since issue 11, so the slots are what bounds
    /// delivery against a fast upstream: 64 delivered 0.72× of what one node did before intents,
    /// 128 keeps pace with ingest (docs/performance.md). PagerDuty's own limit is per routing key
    /// (`delivery_budget_per_minute`), and a key never has more than one attempt in flight.
    public var deliveryConcurrency = 128
    /// Requests a minute per routing key that the relay sends at most (`DeliveryBudget`);
    /// PagerDuty's published limit by default. 0 turns budgets off: only for a mock upstream.
    public var deliveryBudgetPerMinute = DeliveryBudget.Policy.pagerDutyEventsPerMinute
    /// Budgets of routing keys that differ from `deliveryBudgetPerMinute` (an AIOps key granted
    /// more by PagerDuty, or a noisy one held to less), as text until `validate` has read them.
    public var deliveryBudgetTexts: [String: String] = [:]
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
    /// A second admin token accepted during a rotation.
    public var adminTokenNext: String?
    /// The admin tokens a request may present.
    public var adminTokens: [String] { [adminToken, adminTokenNext].compactMap { $0 } }
    /// Routing key (or `*`) to dedup_key template, for triggers sent without a dedup_key
    /// (`DedupKeyTemplate`). Empty: such triggers get a random key.
    public var dedupKeyTemplateTexts: [String: String] = [:]
    /// `digests`: routing key (or `*`) to `SEVERITY:SECONDS` (`DigestRules`).
    public var digestTexts: [String: String] = [:]

    /// What the replicated state machine runs with: `queue` and the parsed digest rules.
    public var stateMachineLimits: RelayStateMachine.Limits {
        get throws(ConfigurationError) {
            var limits = queue
            limits.digestRules = try DigestRules(digestTexts)
            return limits
        }
    }
    // Gateways (docs/gateways.md): each listens only when its address is set, as `host:port`
    // or `host` for the protocol's own port.
    public var syslogUDPAddress: String?
    public var syslogTCPAddress: String?
    public var snmpTrapAddress: String?
    public var lineTCPAddress: String?
    /// The YAML file of rules that turn messages into events; required with any gateway.
    public var gatewayRulesFile: String?
    /// The longest syslog message or line a gateway reads; RFC 5424 asks receivers to take
    /// 2,048 octets and allows more, and PLC alarms with structured data run to a few KB.
    public var gatewayMaxMessageBytes = 16_384
    /// The PagerDuty webhook subscription's secret: with it, `POST /v1/webhooks/pagerduty`
    /// takes v3 webhooks signed with it (or with `webhook_secret_next`, during a rotation).
    public var webhookSecret: String?
    public var webhookSecretNext: String?
    /// The networks webhooks may come from (PagerDuty's published safelist), one per line;
    /// re-read when it changes, without a restart. Required with `webhook_secret`.
    public var webhookAllowedNetworksFile: String?
    /// The secrets a webhook signature is checked against.
    public var webhookSecrets: [String] { [webhookSecret, webhookSecretNext].compactMap { $0 } }
    public var logLevel = "info"
    public var httpsProxy: String?
    public var noProxy: String?

    // Cluster. With no `peers` the node is a cluster of one.
    public var nodeID = 1
    /// `id=url` pairs, comma-separated (or a YAML list), this node's own included.
    public var peers: String?
    public var peerListenHost: String?
    public var peerListenPort: Int?
    /// Shared by every node: signs each peer request (HMAC-SHA256).
    public var clusterSecret: String?
    /// A second secret accepted on peer requests during a rotation; `cluster_secret` still signs.
    public var clusterSecretNext: String?
    /// The secrets peer requests are checked against; the first signs.
    public var clusterSecrets: [String] { [clusterSecret, clusterSecretNext].compactMap { $0 } }
    /// Mutual TLS on the peer links: this node's certificate and key, and the CA that signed
    /// every node's certificate. All three, or none.
    public var peerTLSCertificateFile: String?
    public var peerTLSKeyFile: String?
    public var peerTLSCAFile: String?
    public var heartbeatIntervalMilliseconds: Int64 = 100
    public var electionTimeoutMilliseconds: Int64 = 1_000
    public var maxClockDrift = 0.01
    /// A wall clock this far from a peer's or the upstream's is named in the log, the metrics
    /// and `/v1/cluster`: well before peers refuse each other's requests (60 s), and before
    /// events are stamped with a time that would confuse the people reading them.
    public var maxClockSkewMilliseconds: Int64 = 10_000
    public var deliveryMarginMilliseconds: Int64 = 50
    /// How long a client request waits for a leader to be known before it gets 503.
    public var leaderWaitMilliseconds: Int64 = 3_000
    /// In a cluster, a client request not yet in the log this long after it arrived is refused and never
    /// proposed later: by then the load balancer has retried it on another node (HAProxy's
    /// `timeout server`), the client may have sent the incident's next events, and a late copy
    /// would land behind them (a trigger after its resolve).
    public var requestHoldMilliseconds: Int64 = 1_000
    /// How long a client request waits for its entry to commit before it gets 503.
    public var commitTimeoutMilliseconds: Int64 = 10_000
    /// `/readyz` fails while this node is further behind its leader's commit index.
    public var readinessMaxLagEntries = 1_000
    /// Applied entries kept in the log before they are compacted into a snapshot (or fewer, past
    /// `RaftNode.maxLogBytes`). Each compaction shares the state machine with the snapshot, and
    /// the next change to each of its tables copies that table: at 1,000 entries that was about
    /// a tenth of a leader's CPU under load (docs/performance.md, issue 15).
    public var snapshotThresholdEntries = 10_000
    /// A snapshot travels to a follower in chunks of this size, each its own request, so a
    /// queue of gigabytes crosses a zone without one giant request and resumes after a reset.
    public var snapshotChunkBytes = 4 * 1_024 * 1_024
    /// The largest chunk: a peer request must stay small enough to be retried cheaply.
    public static let maxSnapshotChunkBytes = 64 * 1_024 * 1_024

    public init() {}

    /// Settings whose values are secrets: never logged, and a file holding one must be 0600.
    static let secretSettings: Set<String> = [
        "admin_token", "admin_token_next", "https_proxy", "cluster_secret", "cluster_secret_next", "webhook_secret", "webhook_secret_next",
    ]

    /// The timing the cluster core runs with.
    public var timing: ClusterTiming {
        ClusterTiming(
            heartbeatIntervalMilliseconds: heartbeatIntervalMilliseconds, minimumElectionTimeoutMilliseconds: electionTimeoutMilliseconds,
            maxClockDrift: maxClockDrift, upstreamTimeoutMilliseconds: upstreamTimeoutMilliseconds,
            deliveryMarginMilliseconds: deliveryMarginMilliseconds)
    }

    /// The members, this node included; one member (this node) without `peers`.
    public var members: [ClusterMember] {
        get throws(ConfigurationError) {
            guard let peers, !peers.isEmpty else { return [ClusterMember(id: nodeID, url: "")] }
            return try ClusterMember.parse(peers)
        }
    }

    public var isClustered: Bool { ((try? members.count) ?? 1) > 1 }

    public func validate() throws(ConfigurationError) {
        try retry.validate()
        try queue.validate()
        try validateCluster()
        guard (0...65_535).contains(listenPort) else { throw ConfigurationError("listen_port must be between 0 and 65535") }
        try validateIngestTLS()
        try validateGateways()
        guard (100...ClusterTiming.maxUpstreamTimeoutMilliseconds).contains(upstreamTimeoutMilliseconds) else {
            throw ConfigurationError("upstream_timeout_milliseconds must be between 100 and 300000")
        }
        guard (1...1_024).contains(deliveryConcurrency) else { throw ConfigurationError("delivery_concurrency must be between 1 and 1024") }
        guard (0...DeliveryBudget.Policy.maxEventsPerMinute).contains(deliveryBudgetPerMinute) else {
            throw ConfigurationError(
                "delivery_budget_per_minute must be between 1 and \(DeliveryBudget.Policy.maxEventsPerMinute) (PagerDuty's largest per-key limit), or 0 for no budget against a mock upstream"
            )
        }
        _ = try deliveryBudget
        guard (1...queue.maxQueuedEvents).contains(queueHighWaterEvents) else {
            throw ConfigurationError("queue_high_water_events must be between 1 and max_queued_events (\(queue.maxQueuedEvents))")
        }
        guard (1_024...10_000_000).contains(maxEventBytes) else {
            throw ConfigurationError("max_event_bytes must be between 1024 and 10000000")
        }
        guard (100..<PeerAuthenticator.maxClockSkewMilliseconds).contains(maxClockSkewMilliseconds) else {
            throw ConfigurationError(
                "max_clock_skew_milliseconds must be 100…59999: a skew must be named before peers refuse each other's requests at 60 s")
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
        _ = try dedupKeyTemplates
        _ = try stateMachineLimits
        if let token = adminToken, token.count < 16 {
            throw ConfigurationError("admin_token must be at least 16 characters")
        }
        if let next = adminTokenNext {
            guard adminToken != nil, next.count >= 16 else {
                throw ConfigurationError(
                    "admin_token_next is accepted beside admin_token during a rotation: set admin_token, and 16 characters at least")
            }
        }
        if let next = clusterSecretNext {
            guard clusterSecret != nil, next.utf8.count >= 32 else {
                throw ConfigurationError(
                    "cluster_secret_next is accepted beside cluster_secret during a rotation: set cluster_secret, and 32 characters at least"
                )
            }
        }
        if !Self.isLoopback(listenHost), adminToken == nil {
            throw ConfigurationError(
                "listen_host \(listenHost) is not a loopback address, so the queue API would be open to the network: set admin_token")
        }
    }

    private func validateIngestTLS() throws(ConfigurationError) {
        let settings = [tlsListenPort.map(String.init), tlsCertificateFile, tlsKeyFile]
        guard settings.allSatisfy({ $0 == nil }) || settings.allSatisfy({ $0 != nil }) else {
            throw ConfigurationError("tls_listen_port, tls_certificate_file and tls_key_file go together: set all three or none")
        }
        guard let port = tlsListenPort, let certificate = tlsCertificateFile, let key = tlsKeyFile else { return }
        guard (0...65_535).contains(port), port == 0 || port != listenPort else {
            throw ConfigurationError("tls_listen_port must be between 0 and 65535, and not listen_port")
        }
        for file in [certificate, key] where !FileManager.default.isReadableFile(atPath: file) {
            throw ConfigurationError("TLS file \(file) does not exist or cannot be read")
        }
        try Self.requireOwnerOnly(key, holding: ["a TLS private key"])
    }

    private func validateCluster() throws(ConfigurationError) {
        let members = try self.members
        guard members.count > 1 else { return }
        guard members.count <= 9 else { throw ConfigurationError("peers lists \(members.count) nodes; at most 9 are supported") }
        guard Set(members.map(\.id)).count == members.count else { throw ConfigurationError("peers lists a node id twice") }
        guard members.contains(where: { $0.id == nodeID }) else {
            throw ConfigurationError("node_id \(nodeID) is not in peers (\(members.map { String($0.id) }.joined(separator: ", ")))")
        }
        guard let secret = clusterSecret, secret.utf8.count >= 32 else {
            throw ConfigurationError(
                "a cluster needs cluster_secret, at least 32 characters, the same on every node: peers authenticate with it")
        }
        do {
            try timing.validate()
        } catch {
            throw ConfigurationError("unsafe cluster timing: \(error.description)")
        }
        try validatePeerTLS(members)
        guard (1...600_000).contains(leaderWaitMilliseconds), (100...600_000).contains(commitTimeoutMilliseconds) else {
            throw ConfigurationError("leader_wait_milliseconds must be 1…600000 and commit_timeout_milliseconds 100…600000")
        }
        guard (100...600_000).contains(requestHoldMilliseconds) else {
            throw ConfigurationError(
                "request_hold_milliseconds must be 100…600000 (set it to the load balancer's server timeout, after which it retries elsewhere)"
            )
        }
        guard readinessMaxLagEntries > 0, (10...1_000_000).contains(snapshotThresholdEntries) else {
            throw ConfigurationError("readiness_max_lag_entries must be positive and snapshot_threshold_entries 10…1000000")
        }
        guard (1_024...Self.maxSnapshotChunkBytes).contains(snapshotChunkBytes) else {
            throw ConfigurationError(
                "snapshot_chunk_bytes must be 1024…\(Self.maxSnapshotChunkBytes): each chunk is one peer request, retried whole after a reset"
            )
        }
    }

    /// The budgets routing keys' deliveries spend (`validate` has checked them).
    public var deliveryBudget: DeliveryBudget.Policy {
        get throws(ConfigurationError) {
            var byRoutingKey: [String: Int] = [:]
            for (routingKey, text) in deliveryBudgetTexts {
                guard routingKey != DedupKeyTemplates.anyRoutingKey else {
                    throw ConfigurationError(
                        "delivery_budgets cannot name \"*\": delivery_budget_per_minute is every other routing key's budget")
                }
                guard let value = Int(text), (1...DeliveryBudget.Policy.maxEventsPerMinute).contains(value) else {
                    throw ConfigurationError(
                        "delivery_budgets for \(RoutingKeyMask.mask(routingKey)) must be between 1 and \(DeliveryBudget.Policy.maxEventsPerMinute) a minute, not '\(text)'"
                    )
                }
                byRoutingKey[routingKey] = value
            }
            return DeliveryBudget.Policy(
                defaultEventsPerMinute: deliveryBudgetPerMinute == 0 ? nil : deliveryBudgetPerMinute,
                eventsPerMinuteByRoutingKey: byRoutingKey)
        }
    }

    /// The parsed `dedup_key_templates` (`validate` has checked that they parse).
    public var dedupKeyTemplates: DedupKeyTemplates {
        get throws(ConfigurationError) { try DedupKeyTemplates(dedupKeyTemplateTexts) }
    }

    public var usesPeerTLS: Bool { peerTLSCertificateFile != nil }

    private func validatePeerTLS(_ members: [ClusterMember]) throws(ConfigurationError) {
        let files = [peerTLSCertificateFile, peerTLSKeyFile, peerTLSCAFile]
        guard files.allSatisfy({ $0 == nil }) || files.allSatisfy({ $0 != nil }) else {
            throw ConfigurationError("peer_tls_certificate_file, peer_tls_key_file and peer_tls_ca_file go together: set all three or none")
        }
        for file in files.compactMap({ $0 }) where !FileManager.default.isReadableFile(atPath: file) {
            throw ConfigurationError("peer TLS file \(file) does not exist or cannot be read")
        }
        if let key = peerTLSKeyFile { try Self.requireOwnerOnly(key, holding: ["a TLS private key"]) }
        let scheme = usesPeerTLS ? "https" : "http"
        for member in members where URL(string: member.url)?.scheme != scheme {
            throw ConfigurationError(
                "peers entry \(member.id)=\(member.url) must use \(scheme):// \(usesPeerTLS ? "because peer TLS is configured" : "unless peer_tls_* files are set")"
            )
        }
    }

    /// Where this node listens for its peers: `peer_listen_host`/`peer_listen_port`, else the
    /// host of the ingest listener and the port of its own peer URL.
    public var peerListenAddress: (host: String, port: Int)? {
        guard isClustered, let own = try? members.first(where: { $0.id == nodeID }) else { return nil }
        return (peerListenHost ?? listenHost, peerListenPort ?? URL(string: own.url)?.port ?? 9091)
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

    /// The YAML document in `path`; `what` names the file in errors ("config file").
    static func loadYAML(_ path: String, what: String) throws(ConfigurationError) -> Any? {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigurationError("cannot read \(what) \(path): \(error.localizedDescription)")
        }
        do {
            return try Yams.load(yaml: text)
        } catch {
            throw ConfigurationError("\(what) \(path) is not valid YAML: \(error)")
        }
    }

    mutating func apply(file path: String) throws(ConfigurationError) {
        guard let document = try Self.loadYAML(path, what: "config file") else { return }
        guard let values = document as? [String: Any] else {
            throw ConfigurationError("config file \(path) must be a mapping of setting names to values")
        }
        let secrets = values.keys.filter(Self.secretSettings.contains).sorted()
        if !secrets.isEmpty { try Self.requireOwnerOnly(path, holding: secrets) }
        for (name, value) in values.sorted(by: { $0.key < $1.key }) {
            let text: String
            if let mapping = value as? [String: Any] {
                text = Setting.jsonText(mapping.mapValues { "\($0)" })
            } else {
                text = (value as? [Any]).map { $0.map { "\($0)" }.joined(separator: ",") } ?? "\(value)"
            }
            try set(name, to: text, from: "config file \(path)")
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
                "\(path) holds secrets (\(secrets.joined(separator: ", "))) but its mode is \(String(mode, radix: 8)), readable by group or others; run: chmod 600 \(path)"
            )
        }
    }

    private mutating func set(_ name: String, to value: String, from source: String) throws(ConfigurationError) {
        guard let setting = Self.settings.first(where: { $0.name == name }) else {
            throw ConfigurationError("unknown setting '\(name)' in \(source); see docs/configuration.md")
        }
        guard setting.write(&self, value) else {
            throw ConfigurationError(
                "setting '\(name)' in \(source) has an invalid value\(setting.expects.map { ": expected \($0)" } ?? "")")
        }
    }
}

// MARK: - The settings table

/// One setting: its name in files, how to read it back and how to parse it from text.
struct Setting: Sendable {
    let name: String
    let read: @Sendable (RelayConfiguration) -> String?
    let write: @Sendable (inout RelayConfiguration, String) -> Bool
    /// What a valid value looks like, for the error when `write` refuses one.
    var expects: String? = nil

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

    static func double(_ name: String, _ path: WritableKeyPath<RelayConfiguration, Double> & Sendable) -> Setting {
        Setting(
            name: name, read: { String($0[keyPath: path]) },
            write: { configuration, text in
                guard let value = Double(text), value.isFinite else { return false }
                configuration[keyPath: path] = value
                return true
            })
    }

    static func optionalInteger(_ name: String, _ path: WritableKeyPath<RelayConfiguration, Int?> & Sendable) -> Setting {
        Setting(
            name: name, read: { $0[keyPath: path].map(String.init) },
            write: { configuration, text in
                guard let value = Int(text.replacingOccurrences(of: "_", with: "")) else { return false }
                configuration[keyPath: path] = value
                return true
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

extension Setting {
    /// A mapping from routing keys (or `*`) to strings, written as a JSON object: the form a YAML
    /// mapping takes in `PDRELAY_*` variables. Read back with the routing keys masked. `example`
    /// is such an object, for the error that refuses a value.
    static func routingKeyMapping(
        _ name: String, _ path: WritableKeyPath<RelayConfiguration, [String: String]> & Sendable, example: String
    ) -> Setting {
        Setting(
            name: name,
            read: { configuration in
                let mapping = configuration[keyPath: path]
                guard !mapping.isEmpty else { return nil }
                return jsonText(
                    Dictionary(
                        mapping.map { key, value in (key == DedupKeyTemplates.anyRoutingKey ? key : RoutingKeyMask.mask(key), value) },
                        uniquingKeysWith: { first, _ in first }))
            },
            write: { configuration, text in
                // A refusal becomes the "invalid value" error, which says what is expected.
                do {
                    configuration[keyPath: path] = try JSONDecoder().decode([String: String].self, from: Data(text.utf8))
                    return true
                } catch {
                    return false
                }
            },
            expects: "a mapping of routing keys to strings; in the environment a JSON object such as \(example)")
    }

    static func jsonText(_ mapping: [String: String]) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        do {
            return String(decoding: try encoder.encode(mapping), as: UTF8.self)
        } catch {
            preconditionFailure("a mapping of strings failed to encode as JSON: \(error)")
        }
    }
}

extension RelayConfiguration {
    static let settings: [Setting] = [
        .string("listen_host", \.listenHost),
        .integer("listen_port", \.listenPort),
        .optionalInteger("tls_listen_port", \.tlsListenPort),
        .optional("tls_certificate_file", \.tlsCertificateFile),
        .optional("tls_key_file", \.tlsKeyFile),
        .optional("syslog_udp_address", \.syslogUDPAddress),
        .optional("syslog_tcp_address", \.syslogTCPAddress),
        .optional("snmp_trap_address", \.snmpTrapAddress),
        .optional("line_tcp_address", \.lineTCPAddress),
        .optional("gateway_rules_file", \.gatewayRulesFile),
        .integer("gateway_max_message_bytes", \.gatewayMaxMessageBytes),
        .optional("webhook_secret", \.webhookSecret),
        .optional("webhook_secret_next", \.webhookSecretNext),
        .optional("webhook_allowed_networks_file", \.webhookAllowedNetworksFile),
        .string("data_directory", \.dataDirectory),
        .string("upstream_url", \.upstreamURL),
        .optional("upstream_ca_file", \.upstreamCAFile),
        .integer("upstream_timeout_milliseconds", \.upstreamTimeoutMilliseconds),
        .integer("delivery_concurrency", \.deliveryConcurrency),
        .integer("delivery_budget_per_minute", \.deliveryBudgetPerMinute),
        .routingKeyMapping("delivery_budgets", \.deliveryBudgetTexts, example: #"{"ROUTING_KEY": "600"}"#),
        .integer("retry_initial_backoff_milliseconds", \.retry.initialBackoffMilliseconds),
        .integer("retry_max_backoff_milliseconds", \.retry.maxBackoffMilliseconds),
        .integer("retry_max_attempts", \.retry.maxAttempts),
        .integer("max_queued_events", \.queue.maxQueuedEvents),
        .integer("queue_high_water_events", \.queueHighWaterEvents),
        .integer("max_dedup_keys", \.queue.maxDedupKeys),
        .integer("duplicate_window_milliseconds", \.queue.duplicateWindowMilliseconds),
        .integer("max_incident_folders", \.queue.maxIncidentFolders),
        .integer("repeat_interval_milliseconds", \.queue.repeatIntervalMilliseconds),
        .integer("max_event_bytes", \.maxEventBytes),
        .integer("max_commit_batch_events", \.maxCommitBatchEvents),
        .optional("admin_token", \.adminToken),
        .optional("admin_token_next", \.adminTokenNext),
        .routingKeyMapping("dedup_key_templates", \.dedupKeyTemplateTexts, example: #"{"*": "{source}/{class}"}"#),
        .routingKeyMapping("digests", \.digestTexts, example: #"{"*": "info:600"}"#),
        .string("log_level", \.logLevel),
        .optional("https_proxy", \.httpsProxy),
        .optional("no_proxy", \.noProxy),
        .integer("node_id", \.nodeID),
        .optional("peers", \.peers),
        .optional("peer_listen_host", \.peerListenHost),
        .optionalInteger("peer_listen_port", \.peerListenPort),
        .optional("cluster_secret", \.clusterSecret),
        .optional("cluster_secret_next", \.clusterSecretNext),
        .optional("peer_tls_certificate_file", \.peerTLSCertificateFile),
        .optional("peer_tls_key_file", \.peerTLSKeyFile),
        .optional("peer_tls_ca_file", \.peerTLSCAFile),
        .integer("heartbeat_interval_milliseconds", \.heartbeatIntervalMilliseconds),
        .integer("election_timeout_milliseconds", \.electionTimeoutMilliseconds),
        .double("max_clock_drift", \.maxClockDrift),
        .integer("max_clock_skew_milliseconds", \.maxClockSkewMilliseconds),
        .integer("delivery_margin_milliseconds", \.deliveryMarginMilliseconds),
        .integer("leader_wait_milliseconds", \.leaderWaitMilliseconds),
        .integer("request_hold_milliseconds", \.requestHoldMilliseconds),
        .integer("commit_timeout_milliseconds", \.commitTimeoutMilliseconds),
        .integer("readiness_max_lag_entries", \.readinessMaxLagEntries),
        .integer("snapshot_threshold_entries", \.snapshotThresholdEntries),
        .integer("snapshot_chunk_bytes", \.snapshotChunkBytes),
    ]
}
