import RelayCore

/// What this node's deliveries did over the last minutes, for `pdrelay status` and the status
/// page: counts and latency per 10-second bucket, upstream answers by status code, and the last
/// problems in words. Prometheus keeps the history; this is what an operator sees at a glance
/// without one. Pure: the caller passes the times.
struct RecentActivity: Sendable {
    struct Bucket: Sendable, Equatable {
        var startMilliseconds: Int64
        var delivered = 0
        var retried = 0
        var deadLettered = 0
        var latencySumMilliseconds: Int64 = 0
        var latencyMaxMilliseconds: Int64 = 0
        /// Upstream answers by status code ("none": no answer).
        var answers: [String: Int] = [:]
    }

    struct Problem: Sendable, Equatable {
        var atMilliseconds: Int64
        var text: String
    }

    static let bucketMilliseconds: Int64 = 10_000
    /// Ten minutes of buckets.
    static let maxBuckets = 60
    static let maxProblems = 20
    /// A status code past these many kinds is counted as "other": a broken proxy must not grow this.
    static let maxAnswerKinds = 16

    private(set) var buckets: [Bucket] = []
    /// Newest last.
    private(set) var problems: [Problem] = []

    /// `latencyMilliseconds`: from the event's arrival to this attempt's end.
    mutating func record(_ attempt: AttemptRecord, latencyMilliseconds: Int64, problem: String?) {
        let start = attempt.atMilliseconds - attempt.atMilliseconds % Self.bucketMilliseconds
        if buckets.last.map({ $0.startMilliseconds < start }) ?? true {
            buckets.append(Bucket(startMilliseconds: start))
            if buckets.count > Self.maxBuckets { buckets.removeFirst(buckets.count - Self.maxBuckets) }
        }
        // An attempt stamped before the newest bucket (another task's clock read) joins it.
        let index = buckets.count - 1
        switch attempt.outcome {
        case .delivered:
            buckets[index].delivered += 1
            buckets[index].latencySumMilliseconds += max(latencyMilliseconds, 0)
            buckets[index].latencyMaxMilliseconds = max(buckets[index].latencyMaxMilliseconds, latencyMilliseconds)
        case .retry: buckets[index].retried += 1
        case .deadLettered: buckets[index].deadLettered += 1
        }
        var code = attempt.statusCode.map(String.init) ?? "none"
        if buckets[index].answers[code] == nil && buckets[index].answers.count >= Self.maxAnswerKinds { code = "other" }
        buckets[index].answers[code, default: 0] += 1
        if let problem {
            problems.append(Problem(atMilliseconds: attempt.atMilliseconds, text: problem))
            if problems.count > Self.maxProblems { problems.removeFirst(problems.count - Self.maxProblems) }
        }
    }

    /// The buckets of the last ten minutes before `nowMilliseconds`, gaps included as zeros, so
    /// that a chart's x axis is time.
    func series(nowMilliseconds: Int64) -> [Bucket] {
        let newest = nowMilliseconds - nowMilliseconds % Self.bucketMilliseconds
        let byStart = Dictionary(buckets.map { ($0.startMilliseconds, $0) }, uniquingKeysWith: { $1 })
        return (0..<Int64(Self.maxBuckets)).reversed().map { back in
            let start = newest - back * Self.bucketMilliseconds
            return byStart[start] ?? Bucket(startMilliseconds: start)
        }
    }
}
