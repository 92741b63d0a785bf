/// The three ingest endpoints, each with PagerDuty's own rules.
public enum IngestAPI: String, Sendable, CaseIterable {
    case v2Alert = "v2_enqueue"
    case v2Change = "v2_change_enqueue"
    case v1Generic = "v1_create_event"

    public var kind: EventKind { self == .v2Change ? .change : .alert }
}
