/// A misbehaviour of PagerDuty's that the mock plays for a share of its requests, optionally only
/// within a window of time: how a load test shows the relay under throttling, outages and a slow
/// upstream. Shares are dealt evenly and deterministically (a share of 0.25 is every fourth
/// request), so two runs with the same load see the same faults.
public struct FaultRule: Sendable, Equatable, CustomStringConvertible {
    public var reply: MockPagerDuty.Reply
    /// The fraction of requests, 0...1, that get `reply`.
    public var share: Double
    /// Seconds after the mock's epoch (see `MockPagerDuty.setFaults`) during which the rule
    /// applies; nil for always.
    public var windowSeconds: ClosedRange<Double>?

    public init(reply: MockPagerDuty.Reply, share: Double = 1, windowSeconds: ClosedRange<Double>? = nil) {
        precondition((0...1).contains(share), "a fault's share must be within 0...1")
        self.reply = reply
        self.share = share
        self.windowSeconds = windowSeconds
    }

    /// Reads `KIND[:SHARE][@FROM-TO]`: KIND is `429` (with `Retry-After: 1`), another status code
    /// such as `500` or `503`, `slow=MILLISECONDS` (accepted after the delay) or `hang` (no answer
    /// for 10 minutes: the relay's timeout ends it). SHARE defaults to 1, the window to always.
    /// Examples: `429:0.1`, `503@20-30`, `slow=400:0.05@0-60`.
    public init(parsing text: String) throws(FaultRuleError) {
        var rest = Substring(text)
        var window: ClosedRange<Double>?
        if let at = rest.firstIndex(of: "@") {
            let bounds = rest[rest.index(after: at)...].split(separator: "-", omittingEmptySubsequences: false)
            guard bounds.count == 2, let from = Double(bounds[0]), let to = Double(bounds[1]), from >= 0, from <= to else {
                throw FaultRuleError(text: text, problem: "the window must read @FROM-TO in seconds, FROM ≤ TO")
            }
            window = from...to
            rest = rest[..<at]
        }
        var share = 1.0
        if let colon = rest.firstIndex(of: ":") {
            guard let value = Double(rest[rest.index(after: colon)...]), (0...1).contains(value) else {
                throw FaultRuleError(text: text, problem: "the share must be a number within 0...1")
            }
            share = value
            rest = rest[..<colon]
        }
        let reply: MockPagerDuty.Reply
        if rest == "hang" {
            reply = .delayed(milliseconds: 600_000, .accept)
        } else if rest.hasPrefix("slow=") {
            guard let milliseconds = Int(rest.dropFirst(5)), (1...600_000).contains(milliseconds) else {
                throw FaultRuleError(text: text, problem: "slow=MILLISECONDS takes 1...600000")
            }
            reply = .delayed(milliseconds: milliseconds, .accept)
        } else if let code = Int(rest), (400...599).contains(code) {
            reply = .status(code, retryAfterSeconds: code == 429 ? 1 : nil)
        } else {
            throw FaultRuleError(text: text, problem: "the kind must be a 4xx/5xx status code, slow=MILLISECONDS or hang")
        }
        self.init(reply: reply, share: share, windowSeconds: window)
    }

    public var description: String {
        let kind: String
        switch reply {
        case .delayed(let milliseconds, _) where milliseconds >= 600_000: kind = "hang"
        case .delayed(let milliseconds, _): kind = "slow \(milliseconds) ms"
        case .status(let code, let retryAfter): kind = "\(code)" + (retryAfter.map { " Retry-After \($0)" } ?? "")
        case .accept: kind = "accept"
        }
        let window = windowSeconds.map { " from \($0.lowerBound) s to \($0.upperBound) s" } ?? ""
        return "\(kind) for \(share * 100)% of requests\(window)"
    }
}

public struct FaultRuleError: Error, CustomStringConvertible {
    public let text: String
    public let problem: String
    public var description: String { "upstream fault '\(text)': \(problem)" }
}

/// Deals out faulty replies: each rule earns credit by its share on every request inside its
/// window, and fires when the credit reaches one. The first rule that fires wins.
struct FaultDealer: Sendable {
    private var rules: [FaultRule] = []
    private var credits: [Double] = []
    private var epoch = ContinuousClock.now

    init() {}

    init(rules: [FaultRule], epoch: ContinuousClock.Instant) {
        self.rules = rules
        self.credits = Array(repeating: 0, count: rules.count)
        self.epoch = epoch
    }

    mutating func reply(at instant: ContinuousClock.Instant) -> MockPagerDuty.Reply? {
        let elapsed = instant - epoch
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        var chosen: MockPagerDuty.Reply?
        for index in rules.indices where rules[index].windowSeconds?.contains(seconds) ?? true {
            credits[index] += rules[index].share
            if credits[index] >= 1 {
                credits[index] -= 1
                chosen = chosen ?? rules[index].reply
            }
        }
        return chosen
    }
}
