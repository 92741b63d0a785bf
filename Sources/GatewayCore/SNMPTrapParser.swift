import SwiftASN1

/// Decodes an SNMP message holding a v1 Trap-PDU (RFC 1157) or a v2c SNMPv2-Trap-PDU
/// (RFC 3416) with swift-asn1's BER parser, which bounds nesting and checks every length
/// against the datagram. Other PDUs, and other versions, are refused by name.
public enum SNMPTrapParser {
    public static let maxBindings = 128
    public static let maxTrapBytes = 65_535

    static let trapV1 = ASN1Identifier(tagWithNumber: 4, tagClass: .contextSpecific)
    static let trapV2 = ASN1Identifier(tagWithNumber: 7, tagClass: .contextSpecific)
    static let inform = ASN1Identifier(tagWithNumber: 6, tagClass: .contextSpecific)
    static let ipAddress = ASN1Identifier(tagWithNumber: 0, tagClass: .application)
    static let timeTicks = ASN1Identifier(tagWithNumber: 3, tagClass: .application)

    public static func parse(_ bytes: [UInt8]) throws(GatewayParseError) -> SNMPTrap {
        guard bytes.count <= maxTrapBytes else { throw GatewayParseError("too_large", "a trap over \(maxTrapBytes) bytes") }
        do {
            return try decode(bytes)
        } catch let error as GatewayParseError {
            throw error
        } catch {
            throw GatewayParseError("bad_ber", "not a BER-encoded SNMP message: \(error)")
        }
    }

    private static func decode(_ bytes: [UInt8]) throws -> SNMPTrap {
        let root = try BER.parse(bytes)
        return try BER.sequence(root, identifier: .sequence) { nodes in
            let version = try integer(next(&nodes, "version"))
            let community = try ASN1OctetString(berEncoded: next(&nodes, "community"))
            let pdu = try next(&nodes, "PDU")
            guard nodes.next() == nil else { throw GatewayParseError("bad_snmp", "data after the PDU") }
            switch (version, pdu.identifier) {
            case (0, trapV1): return try v1(pdu, community: Array(community.bytes))
            case (1, trapV2): return try v2c(pdu, community: Array(community.bytes))
            case (1, inform): throw GatewayParseError("unsupported_pdu", "an InformRequest (which wants an answer); send traps")
            case (0, _), (1, _): throw GatewayParseError("unsupported_pdu", "a \(pdu.identifier) PDU is not a trap")
            default: throw GatewayParseError("unsupported_version", "SNMP version \(version + 1) is not v1 or v2c")
            }
        }
    }

    private static func v1(_ pdu: ASN1Node, community: [UInt8]) throws -> SNMPTrap {
        try BER.sequence(pdu, identifier: trapV1) { nodes in
            let enterprise = try ASN1ObjectIdentifier(berEncoded: next(&nodes, "enterprise")).oidComponents
            let address = try next(&nodes, "agent-addr")
            guard address.identifier == ipAddress, case .primitive(let octets) = address.content, octets.count == 4 else {
                throw GatewayParseError("bad_snmp", "agent-addr must be a 4-byte IpAddress")
            }
            let generic = try integer(next(&nodes, "generic-trap"))
            let specific = try integer(next(&nodes, "specific-trap"))
            let uptime = try unsigned(next(&nodes, "time-stamp"), timeTicks)
            let bindings = try variableBindings(next(&nodes, "variable-bindings"))
            guard (0...6).contains(generic), specific >= 0 else { throw GatewayParseError("bad_snmp", "generic-trap must be 0 to 6") }
            // RFC 3584 §3.1: a generic trap is snmpTraps.(generic + 1); an enterprise one is
            // enterprise.0.specific.
            let trapOID = generic == 6 ? enterprise + [0, UInt(specific)] : SNMPTrap.snmpTraps + [UInt(generic + 1)]
            return SNMPTrap(
                version: .v1, community: community, trapOID: trapOID, agentAddress: octets.map(String.init).joined(separator: "."),
                enterprise: enterprise, uptimeHundredths: uptime, bindings: bindings)
        }
    }

    private static func v2c(_ pdu: ASN1Node, community: [UInt8]) throws -> SNMPTrap {
        try BER.sequence(pdu, identifier: trapV2) { nodes in
            _ = try integer(next(&nodes, "request-id"))
            _ = try integer(next(&nodes, "error-status"))
            _ = try integer(next(&nodes, "error-index"))
            var bindings = try variableBindings(next(&nodes, "variable-bindings"))
            // RFC 3416 §4.2.6: sysUpTime.0 first, snmpTrapOID.0 second.
            guard bindings.count >= 2, bindings[0].oid == SNMPTrap.sysUpTime0, bindings[1].oid == SNMPTrap.snmpTrapOID0 else {
                throw GatewayParseError("bad_snmp", "a v2c trap must start with sysUpTime.0 and snmpTrapOID.0")
            }
            let trapOID = try bindings[1].value.split(separator: ".").map { part -> UInt in
                guard let arc = UInt(part) else { throw GatewayParseError("bad_snmp", "snmpTrapOID.0 must hold an OID") }
                return arc
            }
            let uptime = UInt64(bindings[0].value)
            bindings.removeFirst(2)
            return SNMPTrap(version: .v2c, community: community, trapOID: trapOID, uptimeHundredths: uptime, bindings: bindings)
        }
    }

    private static func variableBindings(_ node: ASN1Node) throws -> [SNMPTrap.VariableBinding] {
        guard node.identifier == .sequence, case .constructed(let list) = node.content else {
            throw GatewayParseError("bad_snmp", "variable-bindings must be a SEQUENCE")
        }
        var bindings: [SNMPTrap.VariableBinding] = []
        for item in list {
            guard bindings.count < maxBindings else { throw GatewayParseError("bad_snmp", "more than \(maxBindings) variable bindings") }
            bindings.append(
                try BER.sequence(item, identifier: .sequence) { nodes in
                    let name = try ASN1ObjectIdentifier(berEncoded: next(&nodes, "name")).oidComponents
                    let value = try render(next(&nodes, "value"))
                    guard nodes.next() == nil else {
                        throw GatewayParseError("bad_snmp", "a variable binding has more than a name and a value")
                    }
                    return SNMPTrap.VariableBinding(oid: name, value: value)
                })
        }
        return bindings
    }

    private static func next(_ nodes: inout ASN1NodeCollection.Iterator, _ field: String) throws -> ASN1Node {
        guard let node = nodes.next() else { throw GatewayParseError("bad_snmp", "the \(field) field is missing") }
        return node
    }

    /// A value as text. The SMI's application types are integers under their own tags
    /// (Counter32, Gauge32, TimeTicks, Counter64) or four octets (IpAddress).
    private static func render(_ node: ASN1Node) throws -> String {
        switch (node.identifier.tagClass, node.identifier.tagNumber, node.content) {
        case (.universal, 2, _): return String(try integer(node))
        case (.universal, 4, _): return text(Array(try ASN1OctetString(berEncoded: node).bytes))
        case (.universal, 5, _): return ""
        case (.universal, 6, _): return SNMPTrap.dotted(try ASN1ObjectIdentifier(berEncoded: node).oidComponents)
        case (.application, 0, .primitive(let octets)) where octets.count == 4: return octets.map(String.init).joined(separator: ".")
        case (.application, 1, _), (.application, 2, _), (.application, 3, _), (.application, 6, _), (.application, 7, _):
            return String(try unsigned(node, node.identifier))
        case (.application, 4, .primitive(let octets)): return hex(octets)
        case (.contextSpecific, 0...2, _): return ""  // noSuchObject, noSuchInstance, endOfMibView
        default: throw GatewayParseError("bad_snmp", "a value of type \(node.identifier) is not an SNMP type")
        }
    }

    /// A BER INTEGER in at most 8 octets, two's complement.
    private static func integer(_ node: ASN1Node) throws -> Int64 {
        guard node.identifier == .integer, case .primitive(let octets) = node.content, (1...8).contains(octets.count) else {
            throw GatewayParseError("bad_snmp", "expected an INTEGER of 1 to 8 octets")
        }
        var value: Int64 = (octets.first! & 0x80) != 0 ? -1 : 0
        for octet in octets { value = (value << 8) | Int64(octet) }
        return value
    }

    /// An unsigned application integer (Counter64 takes up to 9 octets, the first a zero).
    private static func unsigned(_ node: ASN1Node, _ identifier: ASN1Identifier) throws -> UInt64 {
        guard node.identifier == identifier, case .primitive(var octets) = node.content, (1...9).contains(octets.count) else {
            throw GatewayParseError("bad_snmp", "expected an unsigned integer of 1 to 9 octets")
        }
        if octets.count == 9 {
            guard octets.first == 0 else { throw GatewayParseError("bad_snmp", "an unsigned integer over 64 bits") }
            octets = octets.dropFirst()
        }
        return octets.reduce(0) { ($0 << 8) | UInt64($1) }
    }

    private static func text(_ bytes: [UInt8]) -> String {
        let printable = bytes.allSatisfy { (0x20...0x7E).contains($0) || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D || $0 >= 0x80 }
        if printable, let text = String(validating: bytes, as: UTF8.self) { return text }
        return hex(bytes[...])
    }

    private static func hex(_ bytes: ArraySlice<UInt8>) -> String {
        bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined(separator: ":")
    }
}
