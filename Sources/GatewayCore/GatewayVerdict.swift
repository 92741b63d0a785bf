import RelayCore

/// What the rules made of one message.
public enum GatewayVerdict: Sendable, Equatable {
    /// A v2 event, as the HTTP endpoint would have received it, the rule that built it
    /// (`unmatched` for the section's catch-all), and its incident (routing key and dedup_key,
    /// nil without a dedup_key): events of one incident must reach the queue in order, others
    /// may go side by side.
    case event([UInt8], rule: String, incident: String?)
    /// No rule matched and the section drops what none takes.
    case unmatched
    /// A rule matched but its event cannot be sent (an acknowledge or resolve whose dedup_key
    /// names a field the message lacks, or an action that is not one); `reason` says which.
    case unmappable(rule: String, reason: String)
}
