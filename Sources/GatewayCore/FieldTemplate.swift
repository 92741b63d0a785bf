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
        for part in try TemplateText.parts(text, what: setting) {
            switch part {
            case .literal(let literal): parts.append(.literal(literal))
            case .placeholder(let placeholder):
                let names = placeholder.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
                guard names.allSatisfy({ !$0.isEmpty && !$0.contains("{") && !$0.contains(" ") }) else {
                    throw ConfigurationError("\(setting) '\(text)' has an empty or malformed placeholder '{\(placeholder)}'")
                }
                parts.append(.field(names))
            }
        }
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
