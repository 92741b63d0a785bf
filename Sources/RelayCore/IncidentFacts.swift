/// What an incident folder keeps of an event besides its action. The proposer reads it from the
/// validated event and puts it in the command, so that every node applies the same facts and
/// none parses JSON while applying.
public struct IncidentFacts: Sendable, Equatable {
    /// Nil for an acknowledge or resolve, which carry no payload.
    public let severity: Severity?
    /// PagerDuty's `payload.summary` (v1: `description`), at most `maxSummaryCharacters`.
    public let summary: String
    /// PagerDuty's `payload.source` (v1: `client`, or `pdrelay`), at most `maxSourceCharacters`.
    public let source: String

    /// PagerDuty's own limit on a summary: the validator refuses longer ones, and this cut only
    /// guards a command that came from elsewhere.
    public static let maxSummaryCharacters = 1_024
    /// Sources are host names and addresses; past this a folder list is unreadable anyway.
    public static let maxSourceCharacters = 255

    public init(severity: Severity?, summary: String, source: String) {
        self.severity = severity
        self.summary = String(summary.prefix(Self.maxSummaryCharacters))
        self.source = String(source.prefix(Self.maxSourceCharacters))
    }
}

extension ValidatedEvent {
    /// The facts of a trigger or change event; nil for an acknowledge or resolve without a
    /// payload.
    public var incidentFacts: IncidentFacts? {
        guard let payload = object["payload"], payload["summary"] != nil || payload["source"] != nil else { return nil }
        return IncidentFacts(
            severity: payload["severity"]?.stringValue.flatMap(Severity.init(rawValue:)),
            summary: payload["summary"]?.stringValue ?? "", source: payload["source"]?.stringValue ?? "")
    }
}
