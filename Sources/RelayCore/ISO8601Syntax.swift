/// PagerDuty documents `timestamp` as ISO 8601 but its own example (`…315+0000`) is not strict
/// RFC 3339, so both offset forms are accepted. A hand-written scanner keeps the core free of
/// Foundation's date parsers, which depend on the process's locale and time zone.
enum ISO8601Syntax {
    static func isDateTime(_ text: String) -> Bool {
        var scanner = ByteScanner(text)
        guard scanner.number(4) != nil, scanner.skip("-"),
            let month = scanner.number(2), (1...12).contains(month), scanner.skip("-"),
            let day = scanner.number(2), (1...31).contains(day), scanner.skip("Tt "),
            let hour = scanner.number(2), hour < 24, scanner.skip(":"),
            let minute = scanner.number(2), minute < 60
        else { return false }
        if scanner.skip(":") {
            guard let second = scanner.number(2), second <= 60 else { return false }
            if scanner.skip(".,") && scanner.digitRun() == 0 { return false }
        }
        if scanner.atEnd || (scanner.skip("Zz") && scanner.atEnd) { return true }
        guard scanner.skip("+-"), scanner.number(2) != nil else { return false }
        if scanner.atEnd { return true }
        _ = scanner.skip(":")
        return scanner.number(2) != nil && scanner.atEnd
    }

    private struct ByteScanner {
        private let bytes: [UInt8]
        private var position = 0

        init(_ text: String) { bytes = Array(text.utf8) }

        var atEnd: Bool { position == bytes.count }

        private func digit(at index: Int) -> Int? {
            guard index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) else { return nil }
            return Int(bytes[index] - UInt8(ascii: "0"))
        }

        /// Exactly `count` digits, as a number; consumes nothing if they are not there.
        mutating func number(_ count: Int) -> Int? {
            var value = 0
            for offset in 0..<count {
                guard let digit = digit(at: position + offset) else { return nil }
                value = value * 10 + digit
            }
            position += count
            return value
        }

        /// Consumes one of `characters` if it is next.
        mutating func skip(_ characters: String) -> Bool {
            guard position < bytes.count, characters.utf8.contains(bytes[position]) else { return false }
            position += 1
            return true
        }

        /// Consumes a run of digits and says how long it was.
        mutating func digitRun() -> Int {
            let start = position
            while digit(at: position) != nil { position += 1 }
            return position - start
        }
    }
}
