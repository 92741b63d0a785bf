/// At most one log line per key per interval: a condition seen on every request (a skewed
/// clock, a full queue) is logged often enough to be found and seldom enough to be read.
/// Pure: the caller passes the monotonic time.
struct LogThrottle<Key: Hashable & Sendable>: Sendable {
    let intervalMilliseconds: Int64
    private var lastAtMilliseconds: [Key: Int64] = [:]
    /// Keys remembered at most; past it the oldest memory goes, which at worst logs a line early.
    static var maxKeys: Int { 1_024 }

    init(intervalMilliseconds: Int64) {
        precondition(intervalMilliseconds > 0)
        self.intervalMilliseconds = intervalMilliseconds
    }

    /// True when a line about `key` may be logged now (and counts it as logged).
    mutating func allows(_ key: Key, now: Int64) -> Bool {
        if let last = lastAtMilliseconds[key], now - last < intervalMilliseconds { return false }
        if lastAtMilliseconds.count >= Self.maxKeys, let oldest = lastAtMilliseconds.min(by: { $0.value < $1.value })?.key {
            lastAtMilliseconds[oldest] = nil
        }
        lastAtMilliseconds[key] = now
        return true
    }
}
