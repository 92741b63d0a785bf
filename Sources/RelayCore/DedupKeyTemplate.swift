import Crypto

/// A dedup_key built from a trigger's own fields, such as `{source}/{component}/{class}`, for
/// triggers that come without one. PagerDuty groups alerts into an incident by dedup_key and
/// advises building it from the host and the alert type; a sender that gives none (a `pd-send`
/// script, a Zabbix action) otherwise opens a new incident for every repeat of the same fault.
///
/// Placeholders name the v2 payload's fields (`source`, `component`, `group`, `class`,
/// `severity`, `summary`) or a top-level string or number of its `custom_details`
/// (`{details.host}`). A template renders only when every field it names is present and not
/// empty: a half-filled key would merge unrelated faults, so the trigger then keeps a random key,
/// as without a template.
public struct DedupKeyTemplate: Sendable, Equatable, CustomStringConvertible {
    enum Part: Sendable, Equatable {
        case literal(String)
        case field(Field)
    }

    enum Field: Sendable, Equatable {
        case payload(String)
        case detail(String)
    }

    static let payloadFields: Set<String> = ["source", "component", "group", "class", "severity", "summary"]
    /// The template text, bounded so that rendering stays cheap on the ingest path.
    public static let maxTemplateCharacters = 512
    /// PagerDuty's limit on dedup_key. A longer rendering keeps its start and ends in a digest of
    /// the whole, so two long keys that differ only at the end stay apart.
    public static let maxKeyCharacters = 255
    static let digestCharacters = 32

    let parts: [Part]
    public let description: String

    /// Parses `text`, or says what is wrong with it.
    public init(_ text: String) throws(ConfigurationError) {
        guard !text.isEmpty, text.count <= Self.maxTemplateCharacters else {
            throw ConfigurationError("a dedup_key template must have 1 to \(Self.maxTemplateCharacters) characters")
        }
        var parts: [Part] = []
        for part in try TemplateText.parts(text, what: "dedup_key template") {
            switch part {
            case .literal(let literal): parts.append(.literal(literal))
            case .placeholder(let name): parts.append(.field(try Self.field(name, in: text)))
            }
        }
        guard parts.contains(where: { if case .field = $0 { true } else { false } }) else {
            throw ConfigurationError("dedup_key template '\(text)' names no field: every trigger would share one incident")
        }
        self.parts = parts
        self.description = text
    }

    private static func field(_ name: String, in text: String) throws(ConfigurationError) -> Field {
        if name.hasPrefix("details."), name.count > "details.".count, !name.dropFirst("details.".count).contains("{") {
            return .detail(String(name.dropFirst("details.".count)))
        }
        guard payloadFields.contains(name) else {
            throw ConfigurationError(
                "dedup_key template '\(text)' names '{\(name)}'; use \(payloadFields.sorted().map { "{\($0)}" }.joined(separator: ", ")) or {details.NAME}"
            )
        }
        return .payload(name)
    }

    /// The key for `event`, or nil when a field it names is missing or empty.
    public func render(_ event: ValidatedEvent) -> String? {
        guard let payload = event.object["payload"] else { return nil }
        var key = ""
        for part in parts {
            switch part {
            case .literal(let text):
                key += text
            case .field(.payload(let name)):
                guard let value = Self.text(payload[name]) else { return nil }
                key += value
            case .field(.detail(let name)):
                guard let value = Self.text(payload["custom_details"]?[name]) else { return nil }
                key += value
            }
        }
        return Self.bounded(key)
    }

    /// `key` if it is within PagerDuty's limit; otherwise its start and a digest of the whole.
    public static func bounded(_ key: String) -> String {
        guard key.count > Self.maxKeyCharacters else { return key }
        let hexDigits = Array("0123456789abcdef")
        let digest = SHA256.hash(data: Array(key.utf8)).prefix(Self.digestCharacters / 2).flatMap {
            [hexDigits[Int($0 >> 4)], hexDigits[Int($0 & 0x0f)]]
        }
        return String(key.prefix(Self.maxKeyCharacters - Self.digestCharacters - 1)) + "~" + String(digest)
    }

    private static func text(_ value: JSONValue?) -> String? {
        switch value {
        case .string(let text) where !text.isEmpty: text
        case .integer(let number): String(number)
        case .number(let number): String(number)
        case .bool(let flag): String(flag)
        default: nil
        }
    }
}
