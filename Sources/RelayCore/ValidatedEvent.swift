/// An event that passed validation, in v2 form, before the relay has assigned anything to it.
public struct ValidatedEvent: Sendable {
    public let api: IngestAPI
    public let action: EventAction
    public let routingKey: String
    /// The client's dedup_key (v2) or incident_key (v1); nil when the relay must assign one.
    public let dedupKey: String?
    /// SHA-256 of the endpoint and the raw body: a client retry carries the same bytes.
    public let fingerprint: [UInt8]
    /// The v2 event as it goes upstream, less a relay-assigned dedup_key.
    let object: [String: JSONValue]
    /// The client's own bytes, forwarded untouched when nothing had to change.
    let originalBody: [UInt8]?

    /// The exact bytes sent upstream. The body is re-encoded only when the relay had to change
    /// it, so clients' fields (known or not) reach PagerDuty as they were sent.
    public func upstreamBody(assignedDedupKey: String) -> [UInt8] {
        if let originalBody, dedupKey != nil || api == .v2Change { return originalBody }
        var object = self.object
        if api.kind == .alert { object["dedup_key"] = .string(dedupKey ?? assignedDedupKey) }
        return JSONValue.object(object).encoded()
    }
}
