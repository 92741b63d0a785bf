import RelayCore

/// Text with `{field}` placeholders over a message's fields and a rule's named captures:
/// `{hostname}/{app}/{msgid}`. `{a|b}` takes the first of `a` and `b` that is present and not
/// empty. Braces cannot be escaped: no PagerDuty field needs them.
public struct FieldTemplate: Sendable, Equatable, CustomStringConvertible {
    enum Part: Sendable, Equatable {
        case literal(String)
        case field([String])
    }

    public static let maxCharacters = 1_024
    let parts: [Part]
    public let description: String

    public init(_ text: String, setting: String) throws(ConfigurationError) {
        guard text.count <= Self.maxCharacters else {
            throw ConfigurationError("\(setting) is longer than \(Self.maxCharacters) characters")
        }
        var parts: [Part] = []
        var rest = Substring(text)
        while let open = rest.firstIndex(where: { $0 == "{" || $0 == "}" }) {
            guard rest[open] == "{" else { throw ConfigurationError("\(setting) '\(text)' has a '}' without its '{'") }
            if open > rest.startIndex { parts.append(.literal(String(rest[..<open]))) }
            let afterOpen = rest.index(after: open)
            guard let close = rest[afterOpen...].firstIndex(of: "}") else {
                throw ConfigurationError("\(setting) '\(text)' has a '{' without its '}'")
            }
            let names = rest[afterOpen..<close].split(separator: "|", omittingEmptySubsequences: false).map(String.init)
            guard names.allSatisfy({ !$0.isEmpty && !$0.contains("{") && !$0.contains(" ") }) else {
                throw ConfigurationError("\(setting) '\(text)' has an empty or malformed placeholder '{\(rest[afterOpen..<close])}'")
            }
            parts.append(.field(names))
            rest = rest[rest.index(after: close)...]
        }
        if !rest.isEmpty { parts.append(.literal(String(rest))) }
        self.parts = parts
        self.description = text
    }

    /// The fields the template names, for checking a configuration.
    public var fieldNames: [String] {
        parts.flatMap { part -> [String] in
            guard case .field(let names) = part else { return [] }
            return names
        }
    }

    /// The text with every placeholder filled; a missing field is empty, unless `strict`, when
    /// the template renders nothing (a half-filled dedup_key would merge unrelated faults).
    public func render(_ fields: [String: String], strict: Bool = false) -> String? {
        var text = ""
        for part in parts {
            switch part {
            case .literal(let literal): text += literal
            case .field(let names):
                if let value = names.lazy.compactMap({ fields[$0] }).first(where: { !$0.isEmpty }) {
                    text += value
                } else if strict {
                    return nil
                }
            }
        }
        return text
    }
}
