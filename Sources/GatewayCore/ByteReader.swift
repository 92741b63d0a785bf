/// A cursor over one message's bytes, for the hand-written parsers: every step checks the end,
/// so no input can read past it.
struct ByteReader {
    private let bytes: [UInt8]
    private var end: Int
    private(set) var position = 0

    init(_ bytes: [UInt8]) {
        self.bytes = bytes
        self.end = bytes.count
    }

    var isAtEnd: Bool { position >= end }
    var peek: UInt8? { position < end ? bytes[position] : nil }
    func peek(at offset: Int) -> UInt8? { position + offset < end ? bytes[position + offset] : nil }

    mutating func advance(by count: Int = 1) { position = min(end, position + count) }

    mutating func next() -> UInt8? {
        defer { advance() }
        return peek
    }

    /// Takes `byte` if it comes next.
    mutating func take(_ byte: UInt8) -> Bool {
        guard peek == byte else { return false }
        advance()
        return true
    }

    /// Bytes up to (not including) a space or one of `stops`, at most `maxLength + 1` of them, so
    /// that a caller sees an over-long token as one and refuses it.
    mutating func token(maxLength: Int, stoppingAt stops: [UInt8] = [UInt8(ascii: " ")]) -> ArraySlice<UInt8> {
        let token = peekToken(maxLength: maxLength, stoppingAt: stops)
        advance(by: token.count)
        return token.count > maxLength ? [] : token
    }

    func peekToken(maxLength: Int, stoppingAt stops: [UInt8] = [UInt8(ascii: " ")]) -> ArraySlice<UInt8> {
        var index = position
        while index < end, index - position <= maxLength, bytes[index] != UInt8(ascii: " "), !stops.contains(bytes[index]) { index += 1 }
        return bytes[position..<index]
    }

    /// Drops the newline, carriage return or NUL a sender may end a datagram or a line with.
    mutating func trimTrailingLineEnd() {
        while end > position, [UInt8(ascii: "\n"), UInt8(ascii: "\r"), 0].contains(bytes[end - 1]) { end -= 1 }
    }

    /// RFC 5424 lets the message start with a UTF-8 byte order mark.
    mutating func skipByteOrderMark() {
        if peek == 0xEF, peek(at: 1) == 0xBB, peek(at: 2) == 0xBF { advance(by: 3) }
    }

    /// The rest, as text; bytes that are not UTF-8 become U+FFFD rather than failing the message.
    mutating func restAsText() -> String {
        defer { position = end }
        return String(decoding: bytes[min(position, end)..<end], as: UTF8.self)
    }

    /// `Mmm dd hh:mm:ss` (RFC 3164 §4.1.2; a day under 10 has a space before it).
    mutating func bsdTimestamp(months: [[UInt8]]) -> String? {
        guard end - position >= 15, months.contains(where: { $0.elementsEqual(bytes[position..<position + 3]) }) else { return nil }
        let stamp = bytes[position..<position + 15]
        let shape = Array("Mmm dd hh:mm:ss".utf8)
        for (offset, expected) in shape.enumerated() where offset >= 3 {
            let byte = stamp[position + offset]
            switch expected {
            case UInt8(ascii: "d") where offset == 4: guard byte == UInt8(ascii: " ") || Self.isDigit(byte) else { return nil }
            case UInt8(ascii: "d"), UInt8(ascii: "h"), UInt8(ascii: "m"), UInt8(ascii: "s"): guard Self.isDigit(byte) else { return nil }
            default: guard byte == expected else { return nil }
            }
        }
        advance(by: 15)
        return String(decoding: stamp, as: UTF8.self)
    }

    /// An RFC 3339 timestamp where RFC 3164 has its own (rsyslog's high-precision template).
    mutating func rfc3339Timestamp() -> String? {
        let word = peekToken(maxLength: 40)
        guard word.count >= 20, word.count <= 40, word.prefix(4).allSatisfy(Self.isDigit), word[word.startIndex + 4] == UInt8(ascii: "-"),
            word.contains(UInt8(ascii: "T"))
        else { return nil }
        advance(by: word.count)
        return String(decoding: word, as: UTF8.self)
    }

    static func isDigit(_ byte: UInt8) -> Bool { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) }
}
