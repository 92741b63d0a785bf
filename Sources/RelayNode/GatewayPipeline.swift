import GatewayCore
import Logging
import NIOConcurrencyHelpers
import RelayCore

/// What every gateway listener does with one message: read it, apply the rules, and hand the
/// event to the intake, which answers once it is durable. Counted per gateway and outcome;
/// malformed input and refusals are logged at most once per 10 s per reason, since a broken
/// sender repeats itself.
struct GatewayPipeline: Sendable {
    let gateway: Gateway
    let rules: GatewayRules
    let intake: EventIntake
    let environment: NodeEnvironment
    let metrics: NodeMetrics
    let logger: Logger
    /// One shared by the listener's tasks, as `IngestRoutes.refusals` is by its requests.
    let throttle = NIOLockedValueBox(LogThrottle<String>(intervalMilliseconds: 10_000))

    /// What became of a message, for the listener: a TCP listener holds its sender back on
    /// `.retryLater`, a UDP one can only count the loss.
    enum Result: Sendable, Equatable {
        case done
        case retryLater
    }

    /// The message's fields for the rules, or nil (counted and logged) when it is not one.
    func fields(_ bytes: [UInt8], sender: String) -> [String: String]? {
        do {
            switch gateway {
            case .syslog:
                return try SyslogParser.parse(bytes).fields(sender: sender)
            case .snmpTraps:
                let trap = try SNMPTrapParser.parse(bytes)
                let communities = rules.section(.snmpTraps).communities
                // Every community is compared in full, so the time taken says nothing of how
                // much of one matched.
                let known = communities.reduce(false) { $0 || Self.constantTimeEqual(Array($1.utf8), trap.community) }
                guard known else {
                    metrics.gateway(gateway.rawValue, "bad_community")
                    warn("bad_community", "a trap with an unknown community was dropped", sender: sender)
                    return nil
                }
                return trap.fields(sender: sender)
            case .lines:
                var fields = try LineParser.parse(bytes)
                fields["sender"] = sender
                return fields
            }
        } catch {
            malformed(error, sender: sender)
            return nil
        }
    }

    /// Counts and (at a bounded rate) logs input that is not a message; the listener goes on.
    func malformed(_ error: GatewayParseError, sender: String) {
        metrics.gateway(gateway.rawValue, "malformed")
        warn(error.reason, "malformed \(gateway.rawValue) input dropped: \(error.description)", sender: sender)
    }

    /// An event a rule built, ready for the intake.
    struct Event: Sendable {
        let body: [UInt8]
        let rule: String
        let incident: String?
        let sender: String
    }

    /// Applies the rules: the event a message becomes, or nil (counted) when it becomes none.
    func event(_ fields: [String: String], matcher: RuleMatcher) -> Event? {
        switch matcher.map(fields) {
        case .unmatched:
            metrics.gateway(gateway.rawValue, "unmatched")
            return nil
        case .unmappable(let rule, let reason):
            metrics.gateway(gateway.rawValue, "unmappable")
            warn("unmappable:\(rule)", "rule \(rule) matched but its event cannot be sent: \(reason)", sender: fields["sender"] ?? "")
            return nil
        case .event(let body, let rule, let incident):
            return Event(body: body, rule: rule, incident: incident, sender: fields["sender"] ?? "")
        }
    }

    /// Hands the event to the intake and waits until it is durable or refused.
    func take(_ event: Event) async -> Result {
        let (body, rule) = (event.body, event.rule)
        switch await intake.take(body, api: .v2Alert, receivedAtMilliseconds: environment.monotonicMilliseconds()) {
        case .taken(let outcome, let dedupKey):
            metrics.gateway(gateway.rawValue, "event")
            metrics.accepted(.v2Alert, outcome)
            logger.debug("gateway event", metadata: ["gateway": "\(gateway.rawValue)", "rule": "\(rule)", "dedup_key": "\(dedupKey)"])
            return .done
        case .invalid(let error):
            metrics.gateway(gateway.rawValue, "invalid_event")
            warn("invalid:\(rule)", "rule \(rule) built an event PagerDuty would refuse: \(error)", sender: event.sender)
            return .done
        case .queueFull:
            metrics.gateway(gateway.rawValue, "queue_full")
            warn(
                "queue_full", "Queue Full: \(gateway.rawValue) messages wait (TCP) or are lost (UDP) until deliveries make room",
                sender: "")
            return .retryLater
        case .unavailable(let error):
            metrics.gateway(gateway.rawValue, "unavailable")
            warn("unavailable", "\(gateway.rawValue) messages cannot be taken now: \(IngestRoutes.explain(error))", sender: "")
            return .retryLater
        }
    }

    /// Takes a batch of events: those of one incident in order, one after the other; different
    /// incidents side by side (at most `maxLanes` at once), so that a burst shares commits
    /// instead of waiting for one commit per message. PagerDuty's order is per incident, and so is
    /// the relay's delivery. With `retryMilliseconds` an event refused for now (queue full, no
    /// leader) is retried until taken, holding its incident's later events back (TCP); without,
    /// it is lost and already counted (UDP). Throws only when cancelled while waiting to retry.
    func takeInLanes(_ events: [Event], retryMilliseconds: Int64?) async throws {
        var lanes: [[Event]] = []
        var laneOfIncident: [String: Int] = [:]
        for event in events {
            if let incident = event.incident, let lane = laneOfIncident[incident] {
                lanes[lane].append(event)
            } else {
                if let incident = event.incident { laneOfIncident[incident] = lanes.count }
                lanes.append([event])
            }
        }
        for start in stride(from: 0, to: lanes.count, by: Self.maxLanes) {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for lane in lanes[start..<min(start + Self.maxLanes, lanes.count)] {
                    group.addTask {
                        for event in lane {
                            while await take(event) == .retryLater, let retryMilliseconds {
                                try await Task.sleep(for: .milliseconds(retryMilliseconds))
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
    }

    /// Incidents taken side by side from one batch.
    static let maxLanes = 256

    private func warn(_ key: String, _ text: String, sender: String) {
        guard throttle.withLockedValue({ $0.allows(key, now: environment.monotonicMilliseconds()) }) else { return }
        logger.warning("\(text)", metadata: ["gateway": "\(gateway.rawValue)", "sender": "\(sender)"])
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(a.count == b.count ? 0 : 1)
        for index in 0..<max(a.count, b.count) {
            difference |= (index < a.count ? a[index] : 0) ^ (index < b.count ? b[index] : 0)
        }
        return difference == 0
    }
}
