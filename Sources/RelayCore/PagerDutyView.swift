/// What PagerDuty itself last said of an incident, from a v3 webhook: a person acknowledged
/// or resolved it (or it was re-opened). The relay's own folder state follows the events it
/// forwarded; this is the other side, so that a trigger after a person resolved the incident
/// is forwarded rather than held back as a repeat of an incident that no longer exists.
public struct PagerDutyView: Sendable, Equatable {
    public enum Status: String, Sendable, Equatable, CaseIterable {
        case triggered, acknowledged, resolved
    }

    /// `X-Webhook-Id`: the same across PagerDuty's retries of one webhook.
    public var webhookID: String
    public var status: Status
    /// The agent's name (`agent.summary`), when a person or an integration did it.
    public var by: String?
    /// PagerDuty's `occurred_at`: webhooks are applied in this order, and one older than the
    /// folder's last forwarded trigger speaks of an earlier incident.
    public var occurredAtMilliseconds: Int64
    /// PagerDuty's incident ID (`data.id`), for the person reading the folder.
    public var incidentID: String

    public static let maxFieldCharacters = 256

    public init(webhookID: String, status: Status, by: String?, occurredAtMilliseconds: Int64, incidentID: String) {
        self.webhookID = String(webhookID.prefix(Self.maxFieldCharacters))
        self.status = status
        self.by = by.map { String($0.prefix(Self.maxFieldCharacters)) }
        self.occurredAtMilliseconds = occurredAtMilliseconds
        self.incidentID = String(incidentID.prefix(Self.maxFieldCharacters))
    }

    /// The folder's lifecycle once PagerDuty said this.
    public var folderState: IncidentFolder.State {
        switch status {
        case .triggered: .open
        case .acknowledged: .acknowledged
        case .resolved: .resolved
        }
    }
}
