import Foundation
import RelayCore
import SeededRandom

/// What the generator sends: how fast, over how many connections, to which incidents, with which
/// actions and sizes. Every run is bounded in time and in count.
public struct Workload: Sendable, Codable {
    public enum Pacing: Sendable, Codable, Equatable {
        /// Each connection sends its next event as soon as the previous one is answered: the
        /// most the system takes at this concurrency.
        case closedLoop
        /// Events are due at a fixed rate whatever the answers; latency counts from when an event
        /// was due, so a stall shows in full (no coordinated omission).
        case openLoop(eventsPerSecond: Double)
    }

    public static let maxEventsLimit = 20_000_000
    public static let maxDurationSeconds = 3_600.0

    public var pacing: Pacing
    public var connections: Int
    /// Incidents (dedup_keys); each belongs to one connection, so its events are sent one after
    /// another and the order the relay accepted them in is known.
    public var dedupKeys: Int
    public var routingKeys: Int
    public var mix: ActionMix
    public var payloadBytes: ClosedRange<Int>
    public var durationSeconds: Double
    public var maxEvents: Int
    /// Answers slower than this count as failures (status 0) and the connection is replaced.
    public var requestTimeoutSeconds: Double
    public var seed: UInt64
    /// Part of every dedup_key, so runs never see each other's incidents (an existing deployment
    /// keeps its dedup table between runs).
    public var runID: String

    public init(
        pacing: Pacing, connections: Int, dedupKeys: Int, routingKeys: Int, mix: ActionMix, payloadBytes: ClosedRange<Int>,
        durationSeconds: Double, maxEvents: Int = Workload.maxEventsLimit, requestTimeoutSeconds: Double = 30, seed: UInt64 = 1,
        runID: String
    ) {
        self.pacing = pacing
        self.connections = connections
        self.dedupKeys = dedupKeys
        self.routingKeys = routingKeys
        self.mix = mix
        self.payloadBytes = payloadBytes
        self.durationSeconds = durationSeconds
        self.maxEvents = maxEvents
        self.requestTimeoutSeconds = requestTimeoutSeconds
        self.seed = seed
        self.runID = runID
    }

    /// Every problem with the settings, in words an operator can act on.
    public func problems() -> [String] {
        var problems: [String] = []
        if !(1...4_096).contains(connections) { problems.append("connections must be 1...4096, not \(connections)") }
        if dedupKeys < connections {
            problems.append("dedup keys (\(dedupKeys)) must be at least the connections (\(connections)): each connection owns its keys")
        }
        if !(1...10_000_000).contains(dedupKeys) { problems.append("dedup keys must be 1...10000000") }
        if !(1...1_000).contains(routingKeys) { problems.append("routing keys must be 1...1000") }
        if payloadBytes.lowerBound < EventFactory.minimumBytes || payloadBytes.upperBound > 50_000 {
            problems.append("payload bytes must lie within \(EventFactory.minimumBytes)...50000")
        }
        if !(durationSeconds > 0 && durationSeconds <= Self.maxDurationSeconds) {
            problems.append("duration must be within 0...\(Int(Self.maxDurationSeconds)) seconds")
        }
        if !(1...Self.maxEventsLimit).contains(maxEvents) { problems.append("max events must be 1...\(Self.maxEventsLimit)") }
        if !(requestTimeoutSeconds > 0 && requestTimeoutSeconds <= 120) { problems.append("request timeout must be within 0...120 s") }
        if case .openLoop(let rate) = pacing, !(rate > 0 && rate <= 1_000_000) {
            problems.append("an open-loop rate must be within 0...1000000 events/s")
        }
        if mix.weights.allSatisfy({ $0 == 0 }) { problems.append("the action mix needs a positive weight") }
        return problems
    }
}

/// Relative weights of trigger, acknowledge and resolve.
public struct ActionMix: Sendable, Codable, Equatable, CustomStringConvertible {
    public static let actions = ["trigger", "acknowledge", "resolve"]
    public var weights: [Int]

    public init(trigger: Int, acknowledge: Int, resolve: Int) { weights = [trigger, acknowledge, resolve] }

    /// `T:A:R`, e.g. `6:2:2`.
    public init(parsing text: String) throws(LoadTestError) {
        let parts = text.split(separator: ":").map { Int($0) }
        guard parts.count == 3, let t = parts[0], let a = parts[1], let r = parts[2], t >= 0, a >= 0, r >= 0, t + a + r > 0 else {
            throw LoadTestError("the action mix must read TRIGGER:ACKNOWLEDGE:RESOLVE weights, e.g. 6:2:2, not '\(text)'")
        }
        self.init(trigger: t, acknowledge: a, resolve: r)
    }

    /// The action whose share of the weights `draw` (0 ..< total) falls in.
    func action(for draw: UInt64) -> UInt8 {
        let total = UInt64(weights.reduce(0, +))
        var point = draw % total
        for (index, weight) in weights.enumerated() {
            if point < UInt64(weight) { return UInt8(index) }
            point -= UInt64(weight)
        }
        preconditionFailure("a draw below the total weight falls in some action")
    }

    public var description: String { weights.map(String.init).joined(separator: ":") }
}

/// Builds the events: incident `k` is dedup_key `lt-RUN-k` under one of the routing keys, and
/// its `n`-th event carries `custom_details.sequence = n`, so the audit can tell every event apart
/// (no two bodies are identical, so none is taken for a client retry).
public struct EventFactory: Sendable {
    /// The smallest event, without padding.
    public static let minimumBytes = 300

    public let runID: String
    public let routingKeys: Int
    private let prefix: String

    public init(runID: String, routingKeys: Int) {
        self.runID = runID
        self.routingKeys = routingKeys
        prefix = "lt-\(runID)-"
    }

    public func dedupKey(incident: Int) -> String { prefix + String(incident) }

    /// The incident a dedup_key of this run names, or nil for someone else's event.
    public func incident(dedupKey: String) -> Int? {
        guard dedupKey.hasPrefix(prefix) else { return nil }
        return Int(dedupKey.dropFirst(prefix.count))
    }

    public func routingKey(incident: Int) -> String {
        "loadtestroutingkey" + String(String(incident % routingKeys + 100_000_000_000_000).suffix(14))
    }

    public func body(incident: Int, sequence: Int, action: UInt8, bytes: Int) -> [UInt8] {
        let key = dedupKey(incident: incident)
        let head =
            #"{"routing_key":"\#(routingKey(incident: incident))","event_action":"\#(ActionMix.actions[Int(action)])","dedup_key":"\#(key)","payload":{"summary":"load test \#(key) event \#(sequence)","source":"pdrelay-loadtest","severity":"warning","custom_details":{"sequence":\#(sequence),"padding":""#
        let tail = #""}}}"#
        let padding = max(0, bytes - head.utf8.count - tail.utf8.count)
        return Array(head.utf8) + Array(repeating: UInt8(ascii: "x"), count: padding) + Array(tail.utf8)
    }
}

/// Which event a connection sends next. Connection `c` of `C` owns incidents `c, c+C, c+2C, …`
/// and walks them round robin; the action and size of each event come from a generator seeded
/// by the run's seed and the connection, so a run replays exactly.
struct EventSchedule {
    let connection: Int
    let connections: Int
    let owned: Int
    let workload: Workload
    private var random: SplitMix64
    private(set) var sent = 0

    init(connection: Int, workload: Workload) {
        self.connection = connection
        self.connections = workload.connections
        self.workload = workload
        owned = (workload.dedupKeys - connection + workload.connections - 1) / workload.connections
        random = SplitMix64(seed: workload.seed &* 0x9E37_79B9 &+ UInt64(connection))
        precondition(owned > 0, "every connection owns at least one incident")
    }

    /// The next event, or nil once this connection's share of `maxEvents` is sent.
    mutating func next() -> (incident: Int, sequence: Int, action: UInt8, bytes: Int)? {
        let share = workload.maxEvents / connections + (connection < workload.maxEvents % connections ? 1 : 0)
        guard sent < share else { return nil }
        let incident = connection + connections * (sent % owned)
        let sequence = sent / owned + 1
        sent += 1
        let action = workload.mix.action(for: random.next())
        let range = workload.payloadBytes
        let bytes = range.lowerBound + Int(random.next() % UInt64(range.count))
        return (incident, sequence, action, bytes)
    }

    /// When the `index`-th event of this connection is due, in nanoseconds after the start, for
    /// open-loop pacing: the connections take turns, so together they keep the rate.
    func dueNanoseconds(index: Int, eventsPerSecond: Double) -> Int64 {
        Int64((Double(index * connections + connection) / eventsPerSecond * 1e9).rounded())
    }
}

public struct LoadTestError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
