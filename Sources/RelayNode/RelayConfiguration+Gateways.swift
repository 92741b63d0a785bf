import Foundation
import GatewayCore
import RelayCore

/// A gateway's listener: where, and over which transport.
struct GatewayListener: Sendable, Equatable {
    enum Transport: String, Sendable { case udp, tcp }
    let gateway: Gateway
    let transport: Transport
    let host: String
    let port: Int
    /// The setting it came from, for log lines and errors.
    let setting: String
}

extension RelayConfiguration {
    /// The gateways' listeners. Syslog's default port is 514 (UDP, RFC 5426; TCP, RFC 6587
    /// has none, and 514 is what rsyslog and PLCs use); SNMP traps' is 162. Raw lines have no
    /// standard port, so theirs must be given.
    var gatewayListeners: [GatewayListener] {
        get throws(ConfigurationError) {
            var listeners: [GatewayListener] = []
            let wanted: [(String, String?, Gateway, GatewayListener.Transport, Int?)] = [
                ("syslog_udp_address", syslogUDPAddress, .syslog, .udp, 514), ("syslog_tcp_address", syslogTCPAddress, .syslog, .tcp, 514),
                ("snmp_trap_address", snmpTrapAddress, .snmpTraps, .udp, 162), ("line_tcp_address", lineTCPAddress, .lines, .tcp, nil),
            ]
            for (setting, text, gateway, transport, defaultPort) in wanted {
                guard let text else { continue }
                let (host, port) = try Self.hostAndPort(text, setting: setting, defaultPort: defaultPort)
                listeners.append(GatewayListener(gateway: gateway, transport: transport, host: host, port: port, setting: setting))
            }
            return listeners
        }
    }

    /// `host:port`, `[v6]:port`, or a bare host with the protocol's port.
    static func hostAndPort(_ text: String, setting: String, defaultPort: Int?) throws(ConfigurationError) -> (String, Int) {
        var host = text
        var port = defaultPort
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            host = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            if rest.hasPrefix(":") { port = Int(rest.dropFirst()) ?? -1 } else if !rest.isEmpty { port = -1 }
        } else if let colon = text.lastIndex(of: ":"), text.firstIndex(of: ":") == colon {
            host = String(text[..<colon])
            port = Int(text[text.index(after: colon)...]) ?? -1
        }
        guard !host.isEmpty, let port, (0...65_535).contains(port) else {
            throw ConfigurationError(
                "\(setting) must be host:port\(defaultPort.map { " or a host (port \($0))" } ?? "") with a port of 0 to 65535, not '\(text)'"
            )
        }
        return (host, port)
    }

    func validateGateways() throws(ConfigurationError) {
        let listeners = try gatewayListeners
        guard (512...262_144).contains(gatewayMaxMessageBytes) else {
            throw ConfigurationError("gateway_max_message_bytes must be between 512 and 262144")
        }
        if webhookSecretNext != nil, webhookSecret == nil {
            throw ConfigurationError("webhook_secret_next is the second secret of a rotation; set webhook_secret too")
        }
        for secret in webhookSecrets where secret.utf8.count < 16 {
            throw ConfigurationError("webhook_secret must be at least 16 characters (PagerDuty's are 64)")
        }
        if webhookSecret != nil, webhookAllowedNetworksFile == nil {
            throw ConfigurationError(
                "webhook_secret needs webhook_allowed_networks_file: PagerDuty's published webhook addresses, one per line (docs/gateways.md)"
            )
        }
        if !listeners.isEmpty, gatewayRulesFile == nil {
            throw ConfigurationError(
                "\(listeners.map(\.setting).joined(separator: ", ")) needs gateway_rules_file: without rules every message would be dropped (docs/gateways.md)"
            )
        }
    }

    /// The gateways' rules, read from `gateway_rules_file`. A file that names SNMP communities
    /// holds secrets and must be 0600.
    func gatewayRules() throws(ConfigurationError) -> GatewayRules {
        guard let path = gatewayRulesFile else { return GatewayRules() }
        let document = try Self.loadYAML(path, what: "gateway_rules_file")
        let rules = try GatewayRules(try Self.jsonValue(document ?? [String: Any](), at: path), file: path)
        if !rules.section(.snmpTraps).communities.isEmpty { try Self.requireOwnerOnly(path, holding: ["snmp_traps.communities"]) }
        return rules
    }

    /// A YAML document as the JSON value the rules are read from.
    static func jsonValue(_ value: Any, at path: String) throws(ConfigurationError) -> JSONValue {
        switch value {
        case let text as String: return .string(text)
        case let flag as Bool: return .bool(flag)
        case let number as Int: return .integer(Int64(number))
        case let number as Double: return .number(number)
        case let list as [Any]:
            var items: [JSONValue] = []
            for item in list { items.append(try jsonValue(item, at: path)) }
            return .array(items)
        case let mapping as [String: Any]:
            var members: [String: JSONValue] = [:]
            for (key, item) in mapping { members[key] = try jsonValue(item, at: path) }
            return .object(members)
        case is NSNull: return .null
        default: throw ConfigurationError("gateway_rules_file \(path) holds a value that is not text, a number, a list or a mapping")
        }
    }
}
