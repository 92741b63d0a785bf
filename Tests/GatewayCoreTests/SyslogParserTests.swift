import GatewayCore
import Testing

/// Syslog as RFC 5424 and RFC 3164 write it, with their own examples, and as util-linux
/// `logger` and a BSD-style PLC send it.
@Suite struct SyslogParserTests {
    func parse(_ text: String) throws -> SyslogMessage { try SyslogParser.parse(Array(text.utf8)) }

    @Test func rfc5424sOwnExamplesParse() throws {
        let first = try parse(
            "<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \u{FEFF}'su root' failed for lonvick on /dev/pts/8")
        #expect(first.format == .rfc5424)
        #expect(first.facilityName == "auth" && first.severityName == "crit")
        #expect(first.hostname == "mymachine.example.com" && first.appName == "su" && first.procID == nil && first.msgID == "ID47")
        #expect(first.message == "'su root' failed for lonvick on /dev/pts/8")

        let second = try parse(
            #"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][examplePriority@32473 class="high"]"#
        )
        #expect(second.facilityName == "local4" && second.severityName == "notice")
        #expect(second.structuredData.map(\.id) == ["exampleSDID@32473", "examplePriority@32473"])
        #expect(second.message == "")
        let fields = second.fields(sender: "192.0.2.1")
        #expect(fields["sd.exampleSDID@32473.eventID"] == "1011")
        #expect(fields["sd.examplePriority@32473.class"] == "high")
    }

    @Test func escapedStructuredDataValuesAreUnescaped() throws {
        let message = try parse(#"<13>1 - host app 12 - [meta@1 note="a \"quoted\" \] and \\ here"] text"#)
        #expect(message.structuredData.first?.parameters.first?.value == #"a "quoted" ] and \ here"#)
        #expect(message.timestamp == nil && message.procID == "12" && message.message == "text")
    }

    @Test func rfc3164WithAndWithoutHostnameAndPid() throws {
        let full = try parse("<13>Dec  4 16:00:01 plc-7 TEMPCTL[311]: zone B2 at 71.5 C\n")
        #expect(full.format == .rfc3164)
        #expect(full.timestamp == "Dec  4 16:00:01" && full.hostname == "plc-7" && full.appName == "TEMPCTL" && full.procID == "311")
        #expect(full.message == "zone B2 at 71.5 C")
        let local = try parse("<30>Oct 11 22:14:15 sshd: session opened")
        #expect(local.hostname == nil && local.appName == "sshd" && local.message == "session opened")
        let bare = try parse("<0>just text, no header")
        #expect(
            bare.facilityName == "kern" && bare.severityName == "emerg" && bare.appName == nil && bare.message == "just text, no header")
    }

    @Test func malformedInputIsRefusedWithAReason() {
        for (text, reason) in [
            ("no pri", "bad_pri"), ("<192>1 - - - - - -", "bad_pri"), ("<1a>x", "bad_pri"), ("", "bad_pri"),
            ("<13>1 - host", "bad_header"), ("<13>1 - h a p m x", "bad_header"), (#"<13>1 - h a p m [id k="v"#, "bad_header"),
        ] {
            #expect(throws: GatewayParseError.self, "\(text)") { try SyslogParser.parse(Array(text.utf8)) }
            #expect((try? SyslogParser.parse(Array(text.utf8))) == nil)
            do {
                _ = try SyslogParser.parse(Array(text.utf8))
            } catch {
                #expect(error.reason == reason, "\(text): \(error)")
            }
        }
    }
}
