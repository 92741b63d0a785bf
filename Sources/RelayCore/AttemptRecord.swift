/// One delivery attempt, kept for `pdrelay queue show`.
public struct AttemptRecord: Sendable, Equatable, Codable {
    public enum Outcome: String, Sendable, Codable {
        case delivered
        case retry
        case deadLettered = "dead_lettered"
    }

    public var outcome: Outcome
    public var atMilliseconds: Int64
    public var durationMilliseconds: Int64
    /// The upstream's HTTP status; nil when no answer came (timeout, connection error).
    public var statusCode: Int?
    /// PagerDuty's answer or the error, with routing keys masked.
    public var detail: String

    public init(outcome: Outcome, atMilliseconds: Int64, durationMilliseconds: Int64, statusCode: Int?, detail: String) {
        self.outcome = outcome
        self.atMilliseconds = atMilliseconds
        self.durationMilliseconds = durationMilliseconds
        self.statusCode = statusCode
        self.detail = detail
    }
}
