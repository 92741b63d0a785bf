import Histogram

/// Latency percentiles from an HDR histogram (microsecond resolution, three significant digits,
/// up to an hour), reported in milliseconds.
public struct LatencySummary: Sendable, Codable, Equatable {
    public var count: UInt64
    public var p50: Double
    public var p90: Double
    public var p99: Double
    public var p999: Double
    public var max: Double

    static let highestMicroseconds: UInt64 = 3_600_000_000

    public init<S: Sequence>(nanoseconds values: S) where S.Element == Int64 {
        var histogram = Histogram<UInt64>(highestTrackableValue: Self.highestMicroseconds, numberOfSignificantValueDigits: .three)
        for value in values { Self.record(value, in: &histogram) }
        self.init(histogram)
    }

    init(_ histogram: Histogram<UInt64>) {
        let count = histogram.totalCount
        self.count = count
        func milliseconds(_ percentile: Double) -> Double { count == 0 ? 0 : Double(histogram.valueAtPercentile(percentile)) / 1_000 }
        p50 = milliseconds(50)
        p90 = milliseconds(90)
        p99 = milliseconds(99)
        p999 = milliseconds(99.9)
        max = count == 0 ? 0 : Double(histogram.max) / 1_000
    }

    static func record(_ nanoseconds: Int64, in histogram: inout Histogram<UInt64>) {
        let microseconds = UInt64(clamping: Swift.max(nanoseconds / 1_000, 0))
        _ = histogram.record(Swift.min(microseconds, highestMicroseconds))
    }

    /// `p50 1.23, p90 …` in milliseconds.
    public var text: String {
        [("p50", p50), ("p90", p90), ("p99", p99), ("p99.9", p999), ("max", max)]
            .map { "\($0.0) \(Self.format($0.1))" }.joined(separator: ", ")
    }

    static func format(_ milliseconds: Double) -> String {
        milliseconds >= 100 ? String(Int(milliseconds.rounded())) : String(Double(Int(milliseconds * 100)) / 100)
    }
}

/// What happened in each second of a run: for the chart, and to find when the service stopped
/// answering.
public struct Timeline: Sendable, Codable, Equatable {
    public struct Second: Sendable, Codable, Equatable {
        public var second: Int
        public var accepted = 0
        public var failed = 0
        public var delivered = 0
        /// Ingest latency of the events answered in this second, ms (0 when none).
        public var p50Milliseconds = 0.0
        public var p99Milliseconds = 0.0
    }

    public var seconds: [Second]

    public init(sent: [SentEvent], upstream: [UpstreamRecord], lengthSeconds: Int) {
        let length = Swift.max(1, lengthSeconds)
        seconds = (0..<length).map { Second(second: $0) }
        var histograms = Array(
            repeating: Histogram<UInt64>(highestTrackableValue: LatencySummary.highestMicroseconds, numberOfSignificantValueDigits: .two),
            count: length)
        func slot(_ nanoseconds: Int64) -> Int { Swift.min(length - 1, Swift.max(0, Int(nanoseconds / 1_000_000_000))) }
        for event in sent {
            let index = slot(event.answeredNanoseconds)
            if event.accepted {
                seconds[index].accepted += 1
                LatencySummary.record(event.latencyNanoseconds, in: &histograms[index])
            } else {
                seconds[index].failed += 1
            }
        }
        for record in upstream where record.delivered { seconds[slot(record.receivedNanoseconds)].delivered += 1 }
        for index in 0..<length where histograms[index].totalCount > 0 {
            seconds[index].p50Milliseconds = Double(histograms[index].valueAtPercentile(50)) / 1_000
            seconds[index].p99Milliseconds = Double(histograms[index].valueAtPercentile(99)) / 1_000
        }
    }
}

/// Stretches of a run in which requests were due but none was answered `202`: what a client
/// saw as an outage. `minimumMilliseconds` keeps ordinary gaps between answers out.
public struct UnavailabilityWindow: Sendable, Codable, Equatable {
    public var fromSeconds: Double
    public var toSeconds: Double
    public var milliseconds: Double { (toSeconds - fromSeconds) * 1_000 }

    public static func find(in sent: [SentEvent], minimumMilliseconds: Double) -> [UnavailabilityWindow] {
        let answers = sent.filter(\.accepted).map(\.answeredNanoseconds).sorted()
        guard let first = answers.first else { return [] }
        var windows: [UnavailabilityWindow] = []
        var previous = first
        for answer in answers.dropFirst() {
            if Double(answer - previous) / 1e6 >= minimumMilliseconds {
                windows.append(.init(fromSeconds: Double(previous) / 1e9, toSeconds: Double(answer) / 1e9))
            }
            previous = answer
        }
        return windows
    }
}
