/// The low-priority triggers of one routing key waiting for its next digest: counts by source
/// and summary, first and last times. Replicated; bounded whatever the flood.
public struct Digest: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        public let source: String
        public let summary: String
        public var count: Int
        public var firstAtMilliseconds: Int64
        public var lastAtMilliseconds: Int64

        public init(source: String, summary: String, count: Int, firstAtMilliseconds: Int64, lastAtMilliseconds: Int64) {
            self.source = source
            self.summary = summary
            self.count = count
            self.firstAtMilliseconds = firstAtMilliseconds
            self.lastAtMilliseconds = lastAtMilliseconds
        }
    }

    /// Distinct (source, summary) pairs kept; past it events are counted in `otherCount`.
    public static let maxEntries = 200
    /// The pairs the digest event lists, most frequent first; the rest are in its counts.
    public static let maxListedEntries = 20

    public let routingKey: String
    /// When its first event arrived: the digest goes out an interval later.
    public let startedAtMilliseconds: Int64
    public var lastAtMilliseconds: Int64
    public var count: Int
    public var otherCount: Int
    /// In order of first arrival.
    public private(set) var entries: [Entry]

    public init(
        routingKey: String, startedAtMilliseconds: Int64, lastAtMilliseconds: Int64, count: Int = 0, otherCount: Int = 0,
        entries: [Entry] = []
    ) {
        precondition(entries.count <= Self.maxEntries, "a digest holds at most \(Self.maxEntries) entries")
        self.routingKey = routingKey
        self.startedAtMilliseconds = startedAtMilliseconds
        self.lastAtMilliseconds = lastAtMilliseconds
        self.count = count
        self.otherCount = otherCount
        self.entries = entries
    }

    public mutating func add(source: String, summary: String, atMilliseconds time: Int64) {
        count += 1
        lastAtMilliseconds = max(lastAtMilliseconds, time)
        if let index = entries.firstIndex(where: { $0.source == source && $0.summary == summary }) {
            entries[index].count += 1
            entries[index].lastAtMilliseconds = max(entries[index].lastAtMilliseconds, time)
        } else if entries.count < Self.maxEntries {
            entries.append(Entry(source: source, summary: summary, count: 1, firstAtMilliseconds: time, lastAtMilliseconds: time))
        } else {
            otherCount += 1
        }
    }

    public func isDue(atMilliseconds time: Int64, intervalMilliseconds: Int64) -> Bool {
        time >= startedAtMilliseconds + intervalMilliseconds
    }

    /// The digest as one trigger, as a client would send it.
    public func eventBody(severity: Severity, intervalMilliseconds: Int64) -> [UInt8] {
        let first = MaintenanceWindowView.rfc3339(startedAtMilliseconds)
        let last = MaintenanceWindowView.rfc3339(lastAtMilliseconds)
        var bySource: [String: Int] = [:]
        for entry in entries { bySource[entry.source, default: 0] += entry.count }
        // Most frequent first; ties in order of arrival, so every node lists the same.
        let top = entries.enumerated().sorted { ($0.element.count, -$0.offset) > ($1.element.count, -$1.offset) }.prefix(
            Self.maxListedEntries)
        let details: [String: JSONValue] = [
            "events": .integer(Int64(count)), "first": .string(first), "last": .string(last),
            "by_source": .object(bySource.mapValues { .integer(Int64($0)) }),
            "top": .array(
                top.map { item in
                    .object([
                        "source": .string(item.element.source), "summary": .string(item.element.summary),
                        "count": .integer(Int64(item.element.count)),
                        "first": .string(MaintenanceWindowView.rfc3339(item.element.firstAtMilliseconds)),
                        "last": .string(MaintenanceWindowView.rfc3339(item.element.lastAtMilliseconds)),
                    ])
                }),
            "other_events": .integer(Int64(otherCount)), "interval_seconds": .integer(intervalMilliseconds / 1_000),
        ]
        return JSONValue.object([
            "routing_key": .string(routingKey), "event_action": "trigger", "dedup_key": .string(dedupKey), "client": "pdrelay digest",
            "payload": .object([
                "summary": .string("Digest: \(count) low-priority events from \(bySource.count) sources, \(first) to \(last)"),
                "source": "pdrelay", "severity": .string(severity.rawValue), "class": "digest", "custom_details": .object(details),
            ]),
        ]).encoded()
    }

    /// One incident per digest: each is its own batch for review.
    public var dedupKey: String { "\(Self.dedupKeyPrefix)\(startedAtMilliseconds)" }

    /// A digest's own event is never digested again.
    public static let dedupKeyPrefix = "pdrelay-digest/"
}
