/// Byte-level checks: the common case is ASCII, and Unicode property lookups were a measurable
/// share of ingest.
enum ASCII {
    static func isAlphanumeric(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }

    static func isWhitespace(_ byte: UInt8) -> Bool { byte == 0x20 || (0x09...0x0D).contains(byte) }

    /// `string.count > limit`, counting characters as PagerDuty does, without walking grapheme
    /// clusters when the UTF-8 length already settles it.
    static func characterCount(_ string: String, exceeds limit: Int) -> Bool {
        string.utf8.count > limit && string.count > limit
    }
}
