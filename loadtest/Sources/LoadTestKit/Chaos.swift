import Foundation
import RelayCore
import SeededRandom

/// One fault the chaos schedule injects into a cluster: `ACTION:TARGET@SECONDS[+HOLD]`.
///
/// - ACTION: `kill9` (SIGKILL, restarted after HOLD seconds, default 2), `sigstop` (frozen,
///   SIGCONT after HOLD, default 3) or `sigterm` (graceful stop, restarted after HOLD, default 2);
/// - TARGET: `leader`, `follower`, `random`, or a node number;
/// - SECONDS: when, counted from the start of the load.
public struct ChaosEvent: Sendable, Codable, Equatable, CustomStringConvertible {
    public enum Action: String, Sendable, Codable { case kill9, sigstop, sigterm }
    public enum Target: Sendable, Codable, Equatable {
        case leader, follower, random
        case node(Int)
    }

    public var action: Action
    public var target: Target
    public var atSeconds: Double
    public var holdSeconds: Double

    public init(action: Action, target: Target, atSeconds: Double, holdSeconds: Double? = nil) {
        self.action = action
        self.target = target
        self.atSeconds = atSeconds
        self.holdSeconds = holdSeconds ?? (action == .sigstop ? 3 : 2)
    }

    public init(parsing text: String) throws(LoadTestError) {
        let problem = LoadTestError(
            "chaos '\(text)' must read ACTION:TARGET@SECONDS[+HOLD], ACTION kill9|sigstop|sigterm, TARGET leader|follower|random|NODE, e.g. kill9:leader@20+2"
        )
        let halves = text.split(separator: "@")
        guard halves.count == 2 else { throw problem }
        let head = halves[0].split(separator: ":")
        guard head.count == 2, let action = Action(rawValue: String(head[0])) else { throw problem }
        let target: Target
        switch head[1] {
        case "leader": target = .leader
        case "follower": target = .follower
        case "random": target = .random
        default:
            guard let node = Int(head[1]), node > 0 else { throw problem }
            target = .node(node)
        }
        let times = halves[1].split(separator: "+")
        guard (1...2).contains(times.count), let at = Double(times[0]), at >= 0 else { throw problem }
        var hold: Double?
        if times.count == 2 {
            guard let value = Double(times[1]), (0...600).contains(value) else { throw problem }
            hold = value
        }
        self.init(action: action, target: target, atSeconds: at, holdSeconds: hold)
    }

    public var description: String {
        let target: String
        switch self.target {
        case .leader: target = "leader"
        case .follower: target = "follower"
        case .random: target = "random"
        case .node(let node): target = String(node)
        }
        return "\(action.rawValue):\(target)@\(atSeconds)+\(holdSeconds)"
    }
}

/// What one chaos event did, and how the service came back.
public struct ChaosOutcome: Sendable, Codable, Equatable {
    public var event: String
    public var node: Int
    /// The victim's role and term just before, from its `/v1/cluster`.
    public var role: String
    public var term: Int
    public var atSeconds: Double
    public var endedAtSeconds: Double
    /// From the fault to the first `202` for an event due after it.
    public var firstAcceptedAfterMilliseconds: Double?
    /// From the fault to the first delivery upstream in a newer term (when the leader was hit).
    public var firstDeliveryInNewerTermMilliseconds: Double?
}

/// Carries out a chaos schedule against a cluster during a run.
public struct ChaosRunner: Sendable {
    public let control: any ChaosControl
    public let events: [ChaosEvent]
    public let seed: UInt64

    public init(control: any ChaosControl, events: [ChaosEvent], seed: UInt64) {
        self.control = control
        self.events = events.sorted { $0.atSeconds < $1.atSeconds }
        self.seed = seed
    }

    /// Runs the schedule from `start`; returns what each event hit (the recovery times are
    /// filled in later, from the run's records).
    public func run(start: ContinuousClock.Instant) async -> [ChaosOutcome] {
        var random = SplitMix64(seed: seed)
        var outcomes: [ChaosOutcome] = []
        for event in events {
            try? await Task.sleep(until: start + .milliseconds(Int64(event.atSeconds * 1_000)))
            var views: [Int: (role: String, term: Int)] = [:]
            for node in control.nodes { views[node] = await control.view(of: node) }
            let node: Int
            switch event.target {
            case .node(let number): node = number
            case .leader: node = views.first { $0.value.role == "leader" }?.key ?? control.nodes[0]
            case .follower: node = views.sorted { $0.key < $1.key }.first { $0.value.role != "leader" }?.key ?? control.nodes[0]
            case .random: node = control.nodes[Int(random.next() % UInt64(control.nodes.count))]
            }
            let at = (ContinuousClock.now - start).seconds
            switch event.action {
            case .kill9: await control.kill9(node)
            case .sigstop: control.pause(node)
            case .sigterm: try? await control.terminate(node)
            }
            try? await Task.sleep(for: .milliseconds(Int64(event.holdSeconds * 1_000)))
            switch event.action {
            case .kill9, .sigterm: try? await control.start(node)
            case .sigstop: control.resume(node)
            }
            outcomes.append(
                ChaosOutcome(
                    event: event.description, node: node, role: views[node]?.role ?? "unknown", term: views[node]?.term ?? 0,
                    atSeconds: at, endedAtSeconds: (ContinuousClock.now - start).seconds))
        }
        return outcomes
    }

    /// Fills in how long each fault kept clients and PagerDuty waiting.
    public static func measureRecovery(_ outcomes: [ChaosOutcome], sent: [SentEvent], upstream: [UpstreamRecord]) -> [ChaosOutcome] {
        outcomes.map { outcome in
            var outcome = outcome
            let at = Int64(outcome.atSeconds * 1e9)
            outcome.firstAcceptedAfterMilliseconds = sent.lazy.filter { $0.accepted && $0.dueNanoseconds >= at }
                .map { Double($0.answeredNanoseconds - at) / 1e6 }.min()
            if outcome.role == "leader" {
                outcome.firstDeliveryInNewerTermMilliseconds = upstream.lazy.filter {
                    $0.delivered && $0.receivedNanoseconds >= at && ($0.term ?? 0) > UInt64(outcome.term)
                }.map { Double($0.receivedNanoseconds - at) / 1e6 }.min()
            }
            return outcome
        }
    }
}
