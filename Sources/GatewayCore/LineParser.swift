import RelayCore

/// Reads one line of the raw TCP gateway: a JSON object (`{"host":"plc-7","level":"crit"}`), or
/// `key=value` pairs separated by spaces, a value in double quotes when it holds spaces
/// (`host=plc-7 msg="over temperature"`, `\"` and `\\` inside). Either way the result is flat
/// fields for the rules; a nested JSON value is kept as its JSON text.
public enum LineParser {
    public static let maxFields = 64
    public static let maxKeyCharacters = 64

    public static func parse(_ bytes: some Collection<UInt8>) throws(GatewayParseError) -> [String: String] {
        var line = Array(bytes)
        while let last = line.last, last == UInt8(ascii: "\r") || last == UInt8(ascii: " ") || last == UInt8(ascii: "\t") {
            line.removeLast()
        }
        let start = line.firstIndex { $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "\t") } ?? line.endIndex
        guard start < line.endIndex else { throw GatewayParseError("empty", "an empty line") }
        if line[start] == UInt8(ascii: "{") { return try json(Array(line[start...])) }
        return try pairs(Array(line[start...]))
    }

    private static func json(_ bytes: [UInt8]) throws(GatewayParseError) -> [String: String] {
        let value: JSONValue
        do {
            value = try JSONValue.parse(bytes)
        } catch {
            throw GatewayParseError("bad_json", "the line is not valid JSON: \(error)")
        }
        guard case .object(let members) = value else { throw GatewayParseError("bad_json", "a JSON line must be an object") }
        guard members.count <= maxFields else { throw GatewayParseError("too_many_fields", "more than \(maxFields) fields") }
        var fields: [String: String] = [:]
        for (key, member) in members {
            guard isKey(key) else { throw GatewayParseError("bad_key", "field names are 1 to \(maxKeyCharacters) of A-Z a-z 0-9 _ . -") }
            switch member {
            case .string(let text): fields[key] = text
            case .integer(let number): fields[key] = String(number)
            case .number(let number): fields[key] = String(number)
            case .bool(let flag): fields[key] = String(flag)
            case .null: continue
            case .array, .object: fields[key] = String(decoding: member.encoded(), as: UTF8.self)
            }
        }
        return fields
    }

    private static func pairs(_ bytes: [UInt8]) throws(GatewayParseError) -> [String: String] {
        var reader = ByteReader(bytes)
        var fields: [String: String] = [:]
        while !reader.isAtEnd {
            while reader.peek == UInt8(ascii: " ") || reader.peek == UInt8(ascii: "\t") { reader.advance() }
            if reader.isAtEnd { break }
            let key = reader.token(maxLength: maxKeyCharacters, stoppingAt: [UInt8(ascii: "="), UInt8(ascii: "\t")])
            let name = String(decoding: key, as: UTF8.self)
            guard isKey(name), reader.take(UInt8(ascii: "=")) else {
                throw GatewayParseError("bad_pair", "expected key=value, where a key is 1 to \(maxKeyCharacters) of A-Z a-z 0-9 _ . -")
            }
            var value: [UInt8] = []
            if reader.take(UInt8(ascii: "\"")) {
                while true {
                    guard let byte = reader.next() else {
                        throw GatewayParseError("bad_pair", "the quoted value of '\(name)' is not closed")
                    }
                    if byte == UInt8(ascii: "\"") { break }
                    if byte == UInt8(ascii: "\\"), let escaped = reader.next() { value.append(escaped) } else { value.append(byte) }
                }
                guard reader.isAtEnd || reader.peek == UInt8(ascii: " ") || reader.peek == UInt8(ascii: "\t") else {
                    throw GatewayParseError("bad_pair", "a space must follow the quoted value of '\(name)'")
                }
            } else {
                while let byte = reader.peek, byte != UInt8(ascii: " "), byte != UInt8(ascii: "\t") {
                    value.append(byte)
                    reader.advance()
                }
            }
            guard fields.count < maxFields || fields[name] != nil else {
                throw GatewayParseError("too_many_fields", "more than \(maxFields) fields")
            }
            fields[name] = String(decoding: value, as: UTF8.self)
        }
        return fields
    }

    static func isKey(_ key: String) -> Bool {
        !key.isEmpty && key.utf8.count <= maxKeyCharacters
            && key.utf8.allSatisfy {
                (UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains($0)
                    || ByteReader.isDigit($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-")
            }
    }
}
