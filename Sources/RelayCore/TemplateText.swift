/// The `{placeholder}` syntax every template of the relay shares (dedup_key templates, the
/// gateways' event templates): literal text, and names in braces. Braces cannot be escaped and
/// do not nest; a brace without its partner is refused, naming the template (`what`).
public enum TemplateText {
    public enum Part: Sendable, Equatable {
        case literal(String)
        case placeholder(String)
    }

    public static func parts(_ text: String, what: String) throws(ConfigurationError) -> [Part] {
        var parts: [Part] = []
        var rest = Substring(text)
        while let open = rest.firstIndex(where: { $0 == "{" || $0 == "}" }) {
            guard rest[open] == "{" else { throw ConfigurationError("\(what) '\(text)' has a '}' without its '{'") }
            if open > rest.startIndex { parts.append(.literal(String(rest[..<open]))) }
            let afterOpen = rest.index(after: open)
            guard let close = rest[afterOpen...].firstIndex(of: "}") else {
                throw ConfigurationError("\(what) '\(text)' has a '{' without its '}'")
            }
            parts.append(.placeholder(String(rest[afterOpen..<close])))
            rest = rest[rest.index(after: close)...]
        }
        if !rest.isEmpty { parts.append(.literal(String(rest))) }
        return parts
    }
}
