import GatewayCore
import Testing

/// Traps as net-snmp's `snmptrap` 5.9 sends them, captured off the wire (numeric OIDs: Debian
/// ships no MIBs), and damaged copies of them.
@Suite struct SNMPTrapParserTests {
    /// `snmptrap -v 1 -c public HOST 1.3.6.1.4.1.8072.3.2.10 10.1.2.3 2 0 '' ifIndex.3 i 3 ifDescr.3 s ge-0/0/3`
    static let v1LinkDown = bytes(
        "305502010004067075626c6963a448060a2b06010401bf0803020a40040a0102030201020201004303740e583029300f060a2b0601020102020101030201033016060a2b060102010202010203040867652d302f302f33"
    )
    /// `snmptrap -v 2c -c public HOST '' linkUp ifIndex.3 i 3 ifAdminStatus.3 i 1 ifOperStatus.3 i 1`
    static let v2cLinkUp = bytes(
        "307802010104067075626c6963a76b02045367240a020100020100305d300f06082b060102010103004303740e583017060a2b06010603010104010006092b0601060301010504300f060a2b060102010202010103020103300f060a2b060102010202010703020101300f060a2b060102010202010803020101"
    )

    static func bytes(_ hex: String) -> [UInt8] {
        var result: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            result.append(UInt8(hex[index..<next], radix: 16)!)
            index = next
        }
        return result
    }

    @Test func aV1GenericTrapBecomesItsSNMPv2OID() throws {
        let trap = try SNMPTrapParser.parse(Self.v1LinkDown)
        #expect(trap.version == .v1 && trap.community == Array("public".utf8))
        #expect(SNMPTrap.dotted(trap.trapOID) == "1.3.6.1.6.3.1.1.5.3")
        #expect(trap.agentAddress == "10.1.2.3" && trap.uptimeHundredths == 0x740e58)
        let fields = trap.fields(sender: "127.0.0.1")
        #expect(fields["trap"] == "linkDown" && fields["agent"] == "10.1.2.3" && fields["enterprise"] == "1.3.6.1.4.1.8072.3.2.10")
        #expect(fields["ifIndex"] == "3" && fields["ifDescr"] == "ge-0/0/3" && fields["1.3.6.1.2.1.2.2.1.2.3"] == "ge-0/0/3")
    }

    @Test func aV2cTrapTakesItsOIDFromTheSecondBinding() throws {
        let trap = try SNMPTrapParser.parse(Self.v2cLinkUp)
        #expect(trap.version == .v2c && trap.agentAddress == nil)
        let fields = trap.fields(sender: "192.0.2.7")
        #expect(fields["trap"] == "linkUp" && fields["agent"] == "192.0.2.7" && fields["ifIndex"] == "3")
        #expect(fields["ifAdminStatus"] == "1" && fields["ifOperStatus"] == "1" && fields["uptime"] == String(0x740e58))
        #expect(trap.bindings.count == 3, "sysUpTime.0 and snmpTrapOID.0 are the header, not bindings")
    }

    @Test func everyTruncationAndEveryFlippedByteIsRefusedOrReadNeverCrashes() {
        for trap in [Self.v1LinkDown, Self.v2cLinkUp] {
            for length in 0..<trap.count {
                #expect(throws: GatewayParseError.self) { try SNMPTrapParser.parse(Array(trap[..<length])) }
            }
            for index in trap.indices {
                var damaged = trap
                damaged[index] ^= 0xFF
                _ = try? SNMPTrapParser.parse(damaged)
            }
        }
    }

    @Test func otherVersionsAndPDUsAreNamed() throws {
        var v3 = Self.v2cLinkUp
        v3[4] = 3
        #expect(throws: GatewayParseError("unsupported_version", "SNMP version 4 is not v1 or v2c")) { try SNMPTrapParser.parse(v3) }
        var getRequest = Self.v2cLinkUp
        getRequest[13] = 0xA0
        do {
            _ = try SNMPTrapParser.parse(getRequest)
            Issue.record("a GetRequest was taken for a trap")
        } catch {
            #expect(error.reason == "unsupported_pdu")
        }
    }
}
