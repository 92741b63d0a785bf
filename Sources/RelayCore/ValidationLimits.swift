/// Limits that PagerDuty documents; the relay enforces them at the door so a client learns of a
/// bad event at once, not from a dead letter hours later.
public struct ValidationLimits: Sendable {
    public static let pagerDuty = ValidationLimits()

    public var maxEventBytes = 512_000
    public var maxSummaryCharacters = 1024
    public var maxDedupKeyCharacters = 255
    public var routingKeyCharacters = 32
}
