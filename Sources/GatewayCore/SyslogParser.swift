/// Reads one syslog message: RFC 5424 when a version follows the PRI, otherwise RFC 3164, read
/// as leniently as RFC 3164 itself asks (§4.3): a missing timestamp or hostname is allowed, and
/// whatever follows the PRI is at worst the message text. Without a valid PRI the input is not
/// syslog. Linear in the input, which the caller bounds.
public enum SyslogParser {
    public static func parse(_ bytes: some Collection<UInt8>) throws(GatewayParseError) -> SyslogMessage {
        var reader = ByteReader(Array(bytes))
        reader.trimTrailingLineEnd()
        guard reader.take(UInt8(ascii: "<")) else { throw GatewayParseError("bad_pri", "a syslog message starts with <PRI>") }
        var pri = 0
        var digits = 0
        while let byte = reader.peek, ByteReader.isDigit(byte), digits < 3 {
            pri = pri * 10 + Int(byte - UInt8(ascii: "0"))
            digits += 1
            reader.advance()
        }
        guard digits > 0, reader.take(UInt8(ascii: ">")), pri <= 191 else {
            throw GatewayParseError("bad_pri", "the PRI must be <0> to <191>")
        }
        let (facility, severity) = (pri / 8, pri % 8)
        if let version = reader.peek, (UInt8(ascii: "1")...UInt8(ascii: "9")).contains(version), reader.peek(at: 1) == UInt8(ascii: " ") {
            reader.advance(by: 2)
            return try rfc5424(&reader, facility: facility, severity: severity)
        }
        return rfc3164(&reader, facility: facility, severity: severity)
    }

    // MARK: RFC 5424

    private static func rfc5424(_ reader: inout ByteReader, facility: Int, severity: Int) throws(GatewayParseError) -> SyslogMessage {
        let timestamp = try header(&reader, "TIMESTAMP", maxLength: 64)
        let hostname = try header(&reader, "HOSTNAME", maxLength: 255)
        let appName = try header(&reader, "APP-NAME", maxLength: 48)
        let procID = try header(&reader, "PROCID", maxLength: 128)
        let msgID = try header(&reader, "MSGID", maxLength: 32, last: true)
        var elements: [SyslogMessage.StructuredDataElement] = []
        if reader.take(UInt8(ascii: "-")) {
        } else if reader.peek == UInt8(ascii: "[") {
            while reader.peek == UInt8(ascii: "[") {
                guard elements.count < maxStructuredDataElements else {
                    throw GatewayParseError("bad_header", "more than \(maxStructuredDataElements) SD-ELEMENTs")
                }
                elements.append(try structuredDataElement(&reader))
            }
        } else {
            throw GatewayParseError("bad_header", "STRUCTURED-DATA must be '-' or start with '['")
        }
        if !reader.isAtEnd {
            guard reader.take(UInt8(ascii: " ")) else {
                throw GatewayParseError("bad_header", "STRUCTURED-DATA must be followed by a space")
            }
        }
        reader.skipByteOrderMark()
        return SyslogMessage(
            format: .rfc5424, facility: facility, severity: severity, timestamp: timestamp, hostname: hostname, appName: appName,
            procID: procID, msgID: msgID, structuredData: elements, message: reader.restAsText())
    }

    static let maxStructuredDataElements = 32
    static let maxStructuredDataParameters = 64

    /// A header field up to the next space; nil for RFC 5424's NILVALUE `-`.
    private static func header(_ reader: inout ByteReader, _ name: String, maxLength: Int, last: Bool = false) throws(GatewayParseError)
        -> String?
    {
        let token = reader.token(maxLength: maxLength)
        guard !token.isEmpty, token.allSatisfy({ (33...126).contains($0) }) else {
            throw GatewayParseError("bad_header", "\(name) must be 1 to \(maxLength) printable characters")
        }
        guard reader.take(UInt8(ascii: " ")) else {
            throw GatewayParseError("bad_header", "\(name) must be followed by a space\(last ? " and STRUCTURED-DATA" : "")")
        }
        return token == [UInt8(ascii: "-")] ? nil : String(decoding: token, as: UTF8.self)
    }

    private static func structuredDataElement(_ reader: inout ByteReader) throws(GatewayParseError) -> SyslogMessage.StructuredDataElement {
        reader.advance()  // [
        let id = reader.token(maxLength: 32, stoppingAt: [UInt8(ascii: " "), UInt8(ascii: "]")])
        guard !id.isEmpty, id.allSatisfy(isSDName) else {
            throw GatewayParseError("bad_header", "an SD-ID must be 1 to 32 name characters")
        }
        var parameters: [(name: String, value: String)] = []
        while reader.take(UInt8(ascii: " ")) {
            guard parameters.count < maxStructuredDataParameters else {
                throw GatewayParseError("bad_header", "more than \(maxStructuredDataParameters) SD-PARAMs in one element")
            }
            let name = reader.token(maxLength: 32, stoppingAt: [UInt8(ascii: "=")])
            guard !name.isEmpty, name.allSatisfy(isSDName), reader.take(UInt8(ascii: "=")), reader.take(UInt8(ascii: "\"")) else {
                throw GatewayParseError("bad_header", "an SD-PARAM must be NAME=\"VALUE\"")
            }
            var value: [UInt8] = []
            while true {
                guard let byte = reader.next() else { throw GatewayParseError("bad_header", "an SD-PARAM value is not closed by '\"'") }
                if byte == UInt8(ascii: "\"") { break }
                if byte == UInt8(ascii: "\\"), let escaped = reader.peek,
                    [UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "]")].contains(escaped)
                {
                    value.append(escaped)
                    reader.advance()
                } else {
                    value.append(byte)
                }
            }
            parameters.append((String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self)))
        }
        guard reader.take(UInt8(ascii: "]")) else { throw GatewayParseError("bad_header", "an SD-ELEMENT is not closed by ']'") }
        return SyslogMessage.StructuredDataElement(id: String(decoding: id, as: UTF8.self), parameters: parameters)
    }

    /// RFC 5424's SD-NAME: printable US-ASCII except `=`, space, `]` and `"`.
    private static func isSDName(_ byte: UInt8) -> Bool {
        (33...126).contains(byte) && byte != UInt8(ascii: "=") && byte != UInt8(ascii: "]") && byte != UInt8(ascii: "\"")
    }

    // MARK: RFC 3164

    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"].map { Array($0.utf8) }

    private static func rfc3164(_ reader: inout ByteReader, facility: Int, severity: Int) -> SyslogMessage {
        var timestamp: String?
        var hostname: String?
        if let stamp = reader.bsdTimestamp(months: months) ?? reader.rfc3339Timestamp() {
            timestamp = stamp
            _ = reader.take(UInt8(ascii: " "))
            // A hostname follows unless the sender left it out (as the local socket does): the
            // next word is then already the TAG, which ends in ':' or carries a '[pid]'.
            let word = reader.peekToken(maxLength: 255)
            if !word.isEmpty, word.last != UInt8(ascii: ":"), !word.contains(UInt8(ascii: "[")),
                word.allSatisfy({ (33...126).contains($0) }), reader.peek(at: word.count) == UInt8(ascii: " ")
            {
                hostname = String(decoding: word, as: UTF8.self)
                reader.advance(by: word.count + 1)
            }
        }
        var appName: String?
        var procID: String?
        let word = reader.peekToken(maxLength: 200)
        if let tag = tag(word) {
            (appName, procID) = tag
            reader.advance(by: word.count)
            _ = reader.take(UInt8(ascii: " "))
        }
        return SyslogMessage(
            format: .rfc3164, facility: facility, severity: severity, timestamp: timestamp, hostname: hostname, appName: appName,
            procID: procID, message: reader.restAsText())
    }

    /// `TAG:` or `TAG[PID]:`, the TAG 1 to 48 characters without space, ':' or brackets.
    private static func tag(_ word: ArraySlice<UInt8>) -> (String, String?)? {
        guard word.last == UInt8(ascii: ":") else { return nil }
        let body = word.dropLast()
        var name = body
        var pid: String?
        if body.last == UInt8(ascii: "]"), let open = body.firstIndex(of: UInt8(ascii: "[")) {
            name = body[..<open]
            let inner = body[body.index(after: open)..<body.index(before: body.endIndex)]
            guard !inner.isEmpty, inner.count <= 128, !inner.contains(UInt8(ascii: "[")) else { return nil }
            pid = String(decoding: inner, as: UTF8.self)
        }
        guard !name.isEmpty, name.count <= 48,
            name.allSatisfy({ (33...126).contains($0) && $0 != UInt8(ascii: ":") && $0 != UInt8(ascii: "[") && $0 != UInt8(ascii: "]") })
        else { return nil }
        return (String(decoding: name, as: UTF8.self), pid)
    }
}
