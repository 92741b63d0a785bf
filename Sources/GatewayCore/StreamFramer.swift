/// Splits a TCP byte stream into messages (RFC 6587): octet counting (`LEN SP MSG`) when a frame
/// starts with a digit, otherwise a message ended by a newline, which is also how the raw line
/// gateway frames. Each frame chooses for itself, as rsyslog does, so one connection may mix
/// them. Memory is bounded by `maxMessageBytes`: a longer frame is skipped (to its newline, or
/// by its count) and reported once, and the stream carries on.
public struct StreamFramer: Sendable {
    public enum Item: Sendable, Equatable {
        case message([UInt8])
        /// A frame that could not be taken; the bytes after it are read on.
        case malformed(GatewayParseError)
    }

    public let maxMessageBytes: Int
    /// Octet counting off: every frame ends at a newline (the raw line gateway).
    public let newlineOnly: Bool

    private enum State: Sendable {
        case frameStart
        case length(Int, digits: Int)
        case counted(remaining: Int, skipping: Bool)
        case line(skipping: Bool)
    }

    private var state = State.frameStart
    private var pending: [UInt8] = []

    public init(maxMessageBytes: Int, newlineOnly: Bool = false) {
        precondition(maxMessageBytes > 0, "a framer needs room for a message")
        self.maxMessageBytes = maxMessageBytes
        self.newlineOnly = newlineOnly
    }

    /// The complete frames in `bytes`, with what came before kept for the next call.
    public mutating func feed(_ bytes: some Sequence<UInt8>) -> [Item] {
        var items: [Item] = []
        for byte in bytes {
            switch state {
            case .frameStart:
                if byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r") || byte == 0 { continue }
                if !newlineOnly, ByteReader.isDigit(byte) {
                    state = .length(Int(byte - UInt8(ascii: "0")), digits: 1)
                } else {
                    state = .line(skipping: false)
                    append(byte, into: &items, skipping: false)
                }
            case .length(let value, let digits):
                if ByteReader.isDigit(byte), digits < 9 {
                    state = .length(value * 10 + Int(byte - UInt8(ascii: "0")), digits: digits + 1)
                } else if byte == UInt8(ascii: " "), value > 0 {
                    let skipping = value > maxMessageBytes
                    if skipping { items.append(.malformed(tooLarge(value))) }
                    state = .counted(remaining: value, skipping: skipping)
                } else {
                    items.append(.malformed(GatewayParseError("bad_frame", "an octet count must be 1 to 9 digits and a space")))
                    state = .line(skipping: true)
                    if byte == UInt8(ascii: "\n") { state = .frameStart }
                }
            case .counted(let remaining, let skipping):
                if !skipping { pending.append(byte) }
                if remaining == 1 {
                    if !skipping { items.append(.message(pending)) }
                    pending.removeAll(keepingCapacity: true)
                    state = .frameStart
                } else {
                    state = .counted(remaining: remaining - 1, skipping: skipping)
                }
            case .line(let skipping):
                if byte == UInt8(ascii: "\n") {
                    if !skipping { items.append(.message(pending)) }
                    pending.removeAll(keepingCapacity: true)
                    state = .frameStart
                } else {
                    append(byte, into: &items, skipping: skipping)
                }
            }
        }
        return items
    }

    private mutating func append(_ byte: UInt8, into items: inout [Item], skipping: Bool) {
        guard !skipping else { return }
        if pending.count == maxMessageBytes {
            items.append(.malformed(tooLarge(nil)))
            pending.removeAll(keepingCapacity: true)
            state = .line(skipping: true)
            return
        }
        pending.append(byte)
    }

    private func tooLarge(_ count: Int?) -> GatewayParseError {
        GatewayParseError(
            "too_large",
            "a message of \(count.map(String.init) ?? "more than \(maxMessageBytes)") bytes is over the limit of \(maxMessageBytes)")
    }

    /// What is left when the sender closes: a last line without its newline is still a message.
    public mutating func finish() -> [Item] {
        defer {
            pending.removeAll()
            state = .frameStart
        }
        switch state {
        case .line(skipping: false) where !pending.isEmpty: return [.message(pending)]
        case .counted(_, skipping: false):
            return [.malformed(GatewayParseError("bad_frame", "the connection closed inside a counted frame"))]
        default: return []
        }
    }
}
