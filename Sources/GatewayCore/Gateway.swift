/// The gateways that turn other protocols into events, each with its own section of rules.
public enum Gateway: String, Sendable, CaseIterable, Hashable {
    case syslog
    case snmpTraps = "snmp_traps"
    case lines
}
