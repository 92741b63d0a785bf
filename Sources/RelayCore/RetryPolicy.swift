import Foundation

/// How the relay retries a delivery: exponential backoff with full jitter (AWS's "Exponential
/// Backoff and Jitter"), so that many keys failing together do not retry together. Randomness
/// comes in as `jitter`, a number in [0, 1) drawn by the shell.
public struct RetryPolicy: Sendable, Equatable {
    public var initialBackoffMilliseconds: Int64
    public var maxBackoffMilliseconds: Int64
    /// Attempts before an event is dead-lettered. With the defaults, about eight hours of
    /// PagerDuty being unreachable.
    public var maxAttempts: Int
    /// A Retry-After longer than this is not believed.
    public static let maxRetryAfterMilliseconds: Int64 = 3_600_000

    public init(initialBackoffMilliseconds: Int64 = 1_000, maxBackoffMilliseconds: Int64 = 300_000, maxAttempts: Int = 100) {
        self.initialBackoffMilliseconds = initialBackoffMilliseconds
        self.maxBackoffMilliseconds = maxBackoffMilliseconds
        self.maxAttempts = maxAttempts
    }

    public func validate() throws(ConfigurationError) {
        guard initialBackoffMilliseconds > 0 else { throw ConfigurationError("retry_initial_backoff_milliseconds must be positive") }
        guard maxBackoffMilliseconds >= initialBackoffMilliseconds else {
            throw ConfigurationError("retry_max_backoff_milliseconds must be at least retry_initial_backoff_milliseconds")
        }
        guard (1...10_000).contains(maxAttempts) else { throw ConfigurationError("retry_max_attempts must be between 1 and 10000") }
    }

    /// The wait after the `attempts`-th failed attempt: uniform in [0, min(max, initial·2^(attempts−1))),
    /// and never shorter than the upstream's Retry-After.
    public func backoffMilliseconds(afterAttempts attempts: Int, jitter: Double, retryAfterMilliseconds: Int64?) -> Int64 {
        precondition(attempts >= 1 && (0..<1).contains(jitter), "backoff needs attempts >= 1 and jitter in [0, 1)")
        let doublings = min(attempts - 1, 40)
        let ceiling = min(maxBackoffMilliseconds, initialBackoffMilliseconds.multipliedReportingOverflow(by: 1 << doublings).partialValue)
        let jittered = Int64(Double(max(ceiling, 1)) * jitter)
        guard let retryAfterMilliseconds else { return jittered }
        return max(jittered, min(retryAfterMilliseconds, Self.maxRetryAfterMilliseconds))
    }
}

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
