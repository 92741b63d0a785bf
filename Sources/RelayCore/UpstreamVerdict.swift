/// What an upstream answer means for the event. PagerDuty's table: 2xx accepted; 400 a bad
/// event, never retry; 429 and 5xx retry later. Other 4xx (401, 403, 404) are the relay's
/// configuration, not the event's fault, so they are retried until an operator fixes it.
public enum UpstreamVerdict: Sendable, Equatable {
    case delivered
    case rejected
    case retry(retryAfterMilliseconds: Int64?)

    /// `statusCode` is nil when no answer came: a timeout or a connection error.
    public static func classify(statusCode: Int?, retryAfter: String?) -> UpstreamVerdict {
        guard let statusCode else { return .retry(retryAfterMilliseconds: nil) }
        switch statusCode {
        case 200..<300: return .delivered
        case 400, 413, 422: return .rejected
        default: return .retry(retryAfterMilliseconds: retryAfter.flatMap(parseRetryAfter))
        }
    }

    /// Only the delay-seconds form: the HTTP-date form would need the wall clock.
    static func parseRetryAfter(_ value: String) -> Int64? {
        guard let seconds = Int64(value.trimmingCharacters(in: .whitespaces)), seconds >= 0, seconds < 1_000_000 else { return nil }
        return seconds * 1000
    }

    /// The outcome to record for an event that has had `attemptsBefore` earlier attempts.
    public func outcome(attemptsBefore: Int, policy: RetryPolicy) -> AttemptRecord.Outcome {
        switch self {
        case .delivered: .delivered
        case .rejected: .deadLettered
        case .retry: attemptsBefore + 1 >= policy.maxAttempts ? .deadLettered : .retry
        }
    }
}
