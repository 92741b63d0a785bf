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
