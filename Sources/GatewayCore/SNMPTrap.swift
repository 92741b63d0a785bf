/// One SNMP trap, v1 or v2c, as the rules see it: the trap's OID in SNMPv2 form (RFC 3584 §3.1
/// turns a v1 generic trap into `snmpTraps.N`), and each variable binding by its OID.
public struct SNMPTrap: Sendable, Equatable {
    public enum Version: String, Sendable { case v1 = "1", v2c = "2c" }

    public struct VariableBinding: Sendable, Equatable {
        public var oid: [UInt]
        /// The value as text: integers in decimal, OIDs and addresses dotted, octet strings as
        /// UTF-8 when they are printable and as hex otherwise.
        public var value: String
    }

    public var version: Version
    public var community: [UInt8]
    public var trapOID: [UInt]
    /// v1's agent-addr; nil in v2c, where the sender's address stands in.
    public var agentAddress: String?
    /// v1's enterprise.
    public var enterprise: [UInt]?
    public var uptimeHundredths: UInt64?
    public var bindings: [VariableBinding]

    public static func dotted(_ oid: [UInt]) -> String { oid.map(String.init).joined(separator: ".") }

    static let snmpTraps: [UInt] = [1, 3, 6, 1, 6, 3, 1, 1, 5]
    static let sysUpTime0: [UInt] = [1, 3, 6, 1, 2, 1, 1, 3, 0]
    static let snmpTrapOID0: [UInt] = [1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0]

    /// The generic traps of RFC 1215 by their SNMPv2 OIDs, so that a rule can say `linkDown`.
    public static let wellKnownTraps: [[UInt]: String] = [
        snmpTraps + [1]: "coldStart", snmpTraps + [2]: "warmStart", snmpTraps + [3]: "linkDown", snmpTraps + [4]: "linkUp",
        snmpTraps + [5]: "authenticationFailure", snmpTraps + [6]: "egpNeighborLoss",
    ]

    /// Columns of IF-MIB (indexed by ifIndex) and scalars of SNMPv2-MIB that traps carry, named
    /// as the MIBs name them so that `{ifIndex}` works in a dedup_key without a MIB compiler.
    static let interfaceColumns: [(prefix: [UInt], name: String)] = [
        ([1, 3, 6, 1, 2, 1, 2, 2, 1, 1], "ifIndex"), ([1, 3, 6, 1, 2, 1, 2, 2, 1, 2], "ifDescr"),
        ([1, 3, 6, 1, 2, 1, 2, 2, 1, 7], "ifAdminStatus"), ([1, 3, 6, 1, 2, 1, 2, 2, 1, 8], "ifOperStatus"),
        ([1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 1], "ifName"), ([1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 18], "ifAlias"),
    ]
    static let scalars: [[UInt]: String] = [[1, 3, 6, 1, 2, 1, 1, 5, 0]: "sysName", [1, 3, 6, 1, 2, 1, 1, 6, 0]: "sysLocation"]

    /// The trap as flat fields for the rules. `sender` is the address the datagram came from.
    /// A binding is there by its dotted OID, and by its MIB name when it is one of
    /// `interfaceColumns` or `scalars`; an interface column also gives its row's `ifIndex`.
    public func fields(sender: String) -> [String: String] {
        var fields: [String: String] = [
            "version": version.rawValue, "trap_oid": Self.dotted(trapOID), "trap": Self.wellKnownTraps[trapOID] ?? Self.dotted(trapOID),
            "agent": agentAddress.flatMap { $0 == "0.0.0.0" ? nil : $0 } ?? sender, "sender": sender,
        ]
        if let enterprise { fields["enterprise"] = Self.dotted(enterprise) }
        if let uptimeHundredths { fields["uptime"] = String(uptimeHundredths) }
        for binding in bindings {
            fields[Self.dotted(binding.oid)] = binding.value
            if let name = Self.scalars[binding.oid] { fields[name] = binding.value }
            for column in Self.interfaceColumns
            where binding.oid.count == column.prefix.count + 1 && binding.oid.starts(with: column.prefix) {
                fields[column.name] = binding.value
                // The row's index names the interface even when the trap does not carry ifIndex.
                if fields["ifIndex"] == nil { fields["ifIndex"] = String(binding.oid[binding.oid.count - 1]) }
            }
        }
        return fields
    }
}
