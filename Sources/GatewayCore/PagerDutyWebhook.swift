import RelayCore

/// One PagerDuty v3 webhook, as far as the relay needs it: an incident event with its
/// `incident_key` (the dedup_key the relay sent). `{"event": {"id", "event_type", "occurred_at",
/// "agent": {"summary"}, "data": {"id", "type": "incident", "incident_key", "status"}}}`.
public struct PagerDutyWebhook: Sendable, Equatable {
    public var eventID: String
    public var eventType: String
    public var occurredAt: String
    public var agent: String?
    /// The incident's dedup_key; nil for events that are not about an incident (`service.*`,
    /// `pagey.ping`), which change nothing.
    public var incidentKey: String?
    public var incidentID: String?

    /// PagerDuty never sends more (it drops webhooks over 256 KB).
    public static let maxBodyBytes = 256 * 1_024

    public static func parse(_ body: [UInt8]) throws(GatewayParseError) -> PagerDutyWebhook {
        guard body.count <= maxBodyBytes else { throw GatewayParseError("too_large", "a webhook body over \(maxBodyBytes) bytes") }
        let document: JSONValue
        do {
            document = try JSONValue.parse(body)
        } catch {
            throw GatewayParseError("bad_json", "the body is not JSON: \(error)")
        }
        guard let event = document["event"], case .object = event else { throw GatewayParseError("bad_webhook", "no event object") }
        guard let id = event["id"]?.stringValue, !id.isEmpty, let type = event["event_type"]?.stringValue, !type.isEmpty,
            let occurredAt = event["occurred_at"]?.stringValue
        else {
            throw GatewayParseError("bad_webhook", "event.id, event.event_type and event.occurred_at must be strings")
        }
        var webhook = PagerDutyWebhook(eventID: id, eventType: type, occurredAt: occurredAt)
        webhook.agent = event["agent"]?["summary"]?.stringValue
        if event["resource_type"]?.stringValue == "incident" || type.hasPrefix("incident.") {
            guard let data = event["data"], case .object = data else {
                throw GatewayParseError("bad_webhook", "an incident event without data")
            }
            webhook.incidentID = data["id"]?.stringValue
            webhook.incidentKey = data["incident_key"]?.stringValue
        }
        return webhook
    }

    /// The status this event gives the incident, for the event types that change it.
    public var status: PagerDutyView.Status? {
        switch eventType {
        case "incident.acknowledged": .acknowledged
        case "incident.resolved": .resolved
        case "incident.triggered", "incident.reopened", "incident.unacknowledged": .triggered
        default: nil
        }
    }

    init(eventID: String, eventType: String, occurredAt: String) {
        self.eventID = eventID
        self.eventType = eventType
        self.occurredAt = occurredAt
    }
}
