/// Checks what a recording upstream received against what clients were told was accepted: the
/// design note's real-process invariants, as one report.
public struct DeliveryAudit: Sendable, CustomStringConvertible {
    /// One event a client got `202` for.
    public struct Acknowledged: Hashable, Sendable {
        public let dedupKey: String
        public let action: String
        public init(dedupKey: String, action: String) {
            self.dedupKey = dedupKey
            self.action = action
        }
    }

    /// Acknowledged but never accepted upstream.
    public let lost: [Acknowledged]
    /// Keys whose deliveries went backwards (e.g. a trigger after its resolve).
    public let orderViolations: [String]
    /// Per-key fencing: requests for a key from a term older than one that had already sent a
    /// request for that key, judged by when they reached the upstream.
    public let staleTermDeliveries: [String]
    /// Every request the upstream received, whatever it answered.
    public let requests: Int
    /// Events delivered more than once, with their copy counts.
    public let duplicates: [Acknowledged: Int]
    /// Terms that delivered, in order: each change is a leader change the duplicate bound allows.
    public let terms: [UInt64]
    /// Events delivered more often than the bound allows (1 + leader changes).
    public let duplicatesBeyondBound: [Acknowledged: Int]

    public var isClean: Bool { lost.isEmpty && orderViolations.isEmpty && staleTermDeliveries.isEmpty && duplicatesBeyondBound.isEmpty }

    /// `order` ranks actions within a key: a key's deliveries must not go down in rank.
    public init(
        acknowledged: Set<Acknowledged>, deliveries: [MockPagerDuty.Delivery],
        order: [String: Int] = ["trigger": 0, "acknowledge": 1, "resolve": 2]
    ) {
        let accepted = deliveries.filter { (200..<300).contains($0.status) }.sorted { $0.arrivedAt < $1.arrivedAt }
        var copies: [Acknowledged: Int] = [:]
        for delivery in accepted {
            guard let key = delivery.dedupKey, let action = delivery.action else { continue }
            copies[Acknowledged(dedupKey: key, action: action), default: 0] += 1
        }
        lost = acknowledged.filter { copies[$0] == nil }.sorted { ($0.dedupKey, $0.action) < ($1.dedupKey, $1.action) }

        var lastRank: [String: Int] = [:]
        var orderViolations: [String] = []
        for delivery in accepted {
            guard let key = delivery.dedupKey, let rank = delivery.action.flatMap({ order[$0] }) else { continue }
            if let last = lastRank[key], rank < last { orderViolations.append("\(key): \(delivery.action ?? "?") after a later action") }
            lastRank[key] = max(lastRank[key] ?? rank, rank)
        }
        self.orderViolations = orderViolations

        var newest: UInt64 = 0
        var newestForKey: [String: UInt64] = [:]
        var stale: [String] = []
        var terms: [UInt64] = []
        for delivery in deliveries.sorted(by: { $0.arrivedAt < $1.arrivedAt }) {
            guard let term = delivery.term.flatMap(UInt64.init) else { continue }
            let key = "\(delivery.routingKey ?? "?")/\(delivery.dedupKey ?? "?")"
            if let newer = newestForKey[key], term < newer {
                stale.append(
                    "\(delivery.dedupKey ?? "?")/\(delivery.action ?? "?") in term \(term) after term \(newer) had sent for the key")
            }
            newestForKey[key] = max(newestForKey[key] ?? term, term)
            if term > newest { terms.append(term) }
            newest = max(newest, term)
        }
        staleTermDeliveries = stale
        requests = deliveries.count
        self.terms = terms
        duplicates = copies.filter { $0.value > 1 }
        let bound = 1 + max(terms.count - 1, 0)
        duplicatesBeyondBound = duplicates.filter { $0.value > bound }
    }

    public var description: String {
        "\(requests) requests; lost \(lost.count), order violations \(orderViolations.count), stale-term requests for a key \(staleTermDeliveries.count), "
            + "duplicated events \(duplicates.count) (beyond the bound: \(duplicatesBeyondBound.count)), delivering terms \(terms)"
            + (lost.isEmpty ? "" : "; lost: \(lost.prefix(5))") + (orderViolations.isEmpty ? "" : "; \(orderViolations.prefix(5))")
            + (staleTermDeliveries.isEmpty ? "" : "; \(staleTermDeliveries.prefix(5))")
    }
}
