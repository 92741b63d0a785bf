/// One delivery the upstream received, reduced to what the audit needs.
public struct UpstreamRecord: Sendable, Equatable {
    public var incident: Int32
    public var sequence: Int32
    public var action: String
    /// The status the upstream answered; only 2xx counts as delivered.
    public var status: Int
    public var term: UInt64?
    public var receivedNanoseconds: Int64

    public init(incident: Int32, sequence: Int32, action: String, status: Int, term: UInt64?, receivedNanoseconds: Int64) {
        self.incident = incident
        self.sequence = sequence
        self.action = action
        self.status = status
        self.term = term
        self.receivedNanoseconds = receivedNanoseconds
    }

    public var delivered: Bool { (200..<300).contains(status) }
}

/// Checks, event by event, what the clients were told against what PagerDuty received, by the
/// per-incident sequence numbers every event carries:
///
/// - **lost**: answered `202` but neither delivered nor coalesced. The relay replaces a queued,
///   not-yet-sent event by the next one of the same action for the same key (flood coalescing),
///   so an event counts as delivered through a later event of its incident when that one has
///   the same action, was delivered, and only same-action, undelivered events lie between them.
///   The first event of an incident is never coalesced: it enters an empty queue as its head,
///   and the relay replaces only a tail behind a head, so a first event not delivered is lost;
/// - **order violations**: an acknowledged event delivered after a later acknowledged event of
///   its incident had been delivered (a stale trigger after its resolve). Unacknowledged events
///   are left out: a client that gave up on one and sent the next made the order itself;
/// - **duplicates**: an event delivered more than once, and those beyond the bound of one extra
///   copy per leader change;
/// - **stale-term deliveries**: a delivery for an incident in a term older than one that had
///   already delivered for it (per-key fencing: an old leader's request for another incident
///   may legitimately land after a new leader started).
public struct SequenceAudit: Sendable, Codable, Equatable {
    public var acknowledged = 0
    public var deliveredDirectly = 0
    public var coalesced = 0
    public var lost = 0
    public var orderViolations = 0
    public var duplicatedEvents = 0
    public var duplicatesBeyondBound = 0
    public var staleTermDeliveries = 0
    /// Deliveries of events the clients never saw accepted (their answer was lost or late).
    public var deliveredUnacknowledged = 0
    /// Terms that delivered, in the order they first did.
    public var deliveringTerms: [UInt64] = []
    /// A few lost and out-of-order events, as `incident/sequence`, for the report.
    public var examples: [String] = []

    public var isClean: Bool { lost == 0 && orderViolations == 0 && staleTermDeliveries == 0 && duplicatesBeyondBound == 0 }

    public init() {}

    public init(sent: [SentEvent], upstream: [UpstreamRecord]) {
        let received = upstream.sorted { $0.receivedNanoseconds < $1.receivedNanoseconds }
        var copies: [EventID: Int] = [:]
        for record in received where record.delivered {
            copies[EventID(incident: record.incident, sequence: record.sequence), default: 0] += 1
        }

        var acknowledgedIDs: Set<EventID> = []
        var byIncident: [Int32: [SentEvent]] = [:]
        for event in sent {
            byIncident[event.incident, default: []].append(event)
            if event.accepted { acknowledgedIDs.insert(EventID(incident: event.incident, sequence: event.sequence)) }
        }
        acknowledged = acknowledgedIDs.count
        deliveredUnacknowledged = copies.keys.filter { !acknowledgedIDs.contains($0) }.count

        for (incident, events) in byIncident.sorted(by: { $0.key < $1.key }) {
            // From the newest event back: `cover` is the action of the nearest later event that
            // was delivered, or coalesced into one that was.
            var cover: UInt8?
            let first = events.map(\.sequence).min()
            for event in events.sorted(by: { $0.sequence > $1.sequence }) {
                let id = EventID(incident: incident, sequence: event.sequence)
                if copies[id] != nil {
                    cover = event.action
                    if event.accepted { deliveredDirectly += 1 }
                } else if event.accepted {
                    if cover == event.action && event.sequence != first {
                        coalesced += 1
                    } else {
                        lost += 1
                        cover = nil
                        if examples.count < 10 { examples.append("lost \(incident)/\(event.sequence)") }
                    }
                }
            }
        }

        var newestDelivered: [Int32: Int32] = [:]
        var newestTerm: UInt64 = 0
        var newestTermForIncident: [Int32: UInt64] = [:]
        for record in received {
            if let term = record.term {
                if term < newestTermForIncident[record.incident] ?? 0 { staleTermDeliveries += 1 }
                newestTermForIncident[record.incident] = max(newestTermForIncident[record.incident] ?? term, term)
                if term > newestTerm { deliveringTerms.append(term) }
                newestTerm = max(newestTerm, term)
            }
            guard record.delivered, acknowledgedIDs.contains(EventID(incident: record.incident, sequence: record.sequence)) else {
                continue
            }
            if let newest = newestDelivered[record.incident], record.sequence < newest {
                orderViolations += 1
                if examples.count < 10 { examples.append("\(record.incident)/\(record.sequence) after \(record.incident)/\(newest)") }
            }
            newestDelivered[record.incident] = max(newestDelivered[record.incident] ?? record.sequence, record.sequence)
        }

        let bound = 1 + max(deliveringTerms.count - 1, 0)
        duplicatedEvents = copies.values.filter { $0 > 1 }.count
        duplicatesBeyondBound = copies.values.filter { $0 > bound }.count
    }

    struct EventID: Hashable {
        var incident: Int32
        var sequence: Int32
    }
}
