/// Within a routing key's delivery budget, urgent events take the next slot before routine ones
/// (issue 12): a flood of info triggers must not hold back a critical one on another incident.
/// Order within one incident is untouched; lanes only choose which incident goes next.
public enum DeliveryLane: Int, Sendable, Comparable, CaseIterable {
    /// Critical and error triggers, and every acknowledge and resolve: an acknowledge or resolve
    /// stops a person being paged for something already handled, so it never waits behind noise.
    case urgent = 0
    /// Warning and info triggers, and change events (context, never a page).
    case routine = 1

    public static func < (lhs: DeliveryLane, rhs: DeliveryLane) -> Bool { lhs.rawValue < rhs.rawValue }

    /// The lane of `event`. A trigger's severity is read from the bytes that go upstream, and
    /// only when its routing key has no free slot, so the common path parses nothing.
    public init(of event: QueuedEvent) {
        switch (event.kind, event.action) {
        case (.change, _), (_, .change): self = .routine
        case (.alert, .acknowledge), (.alert, .resolve): self = .urgent
        case (.alert, .trigger):
            // The body passed validation before it was queued, so it parses and names a severity
            // (a v1 event's translation carries "error"). Were it ever unreadable, the event would
            // go as urgent: a wrong lane may only hurry an event, never hold it back, so the
            // parse error carries nothing worth keeping.
            let severity = (try? JSONValue.parse(event.body))?["payload"]?["severity"]?.stringValue.flatMap(Severity.init(rawValue:))
            switch severity {
            case .critical, .error, nil: self = .urgent
            case .warning, .info: self = .routine
            }
        }
    }
}
