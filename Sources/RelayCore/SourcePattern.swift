/// A shell-style pattern over an event's `payload.source`: `*` matches any run of characters,
/// `?` one character, everything else itself. Maintenance windows select sources with it
/// (`db-*.eu-west`), as operators already write them in Alertmanager silences and cron.
public struct SourcePattern: Sendable, Equatable, CustomStringConvertible {
    public let description: String

    /// Sources are host names and addresses (`IncidentFacts.maxSourceCharacters`).
    public static let maxCharacters = 255

    public init(_ text: String) throws(OperatorError) {
        guard !text.isEmpty, text.count <= Self.maxCharacters else {
            throw OperatorError("source_pattern must be 1-\(Self.maxCharacters) characters")
        }
        description = text
    }

    public func matches(_ source: String) -> Bool { Self.matches(pattern: description, source) }

    /// Iterative glob matching with one backtrack point: linear in practice, and never
    /// exponential whatever the pattern (a recursive matcher is, on `*a*a*a*b`). Any text is a
    /// pattern here; `init` is where a window's pattern is refused.
    public static func matches(pattern text: String, _ source: String) -> Bool {
        let pattern = Array(text.utf8)
        let text = Array(source.utf8)
        var (p, t) = (0, 0)
        var star: (p: Int, t: Int)? = nil
        while t < text.count {
            if p < pattern.count, pattern[p] == UInt8(ascii: "?") || pattern[p] == text[t] {
                p += 1
                t += 1
            } else if p < pattern.count, pattern[p] == UInt8(ascii: "*") {
                star = (p, t)
                p += 1
            } else if let last = star {
                p = last.p + 1
                t = last.t + 1
                star = (last.p, last.t + 1)
            } else {
                return false
            }
        }
        while p < pattern.count, pattern[p] == UInt8(ascii: "*") { p += 1 }
        return p == pattern.count
    }
}
