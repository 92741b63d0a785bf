import DequeModule
import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOSSL
import ServiceLifecycle

/// A real HTTP server that plays PagerDuty's Events API for tests and load tests: it checks every
/// event against PagerDuty's rules, records it, and answers as scripted (202, 400, 429 with
/// Retry-After, 5xx, slowly, or not at all until the client gives up), either as a script of
/// next replies or as fault rules for a share of requests within a time window.
public actor MockPagerDuty {
    public indirect enum Reply: Sendable, Equatable {
        /// 202 with PagerDuty's success body, or 400 if the event breaks PagerDuty's rules.
        case accept
        case status(Int, retryAfterSeconds: Int? = nil)
        /// Waits, then answers with the inner reply. A long delay is a hang.
        case delayed(milliseconds: Int, Reply)
    }

    public struct Delivery: Sendable {
        public let path: String
        /// Empty when the mock was made with `recordsBodies: false`.
        public let body: [UInt8]
        public let routingKey: String?
        public let dedupKey: String?
        public let action: String?
        /// The relay's leadership term, when it sends one.
        public let term: String?
        /// `payload.custom_details.sequence`, when the sender numbered its events per key (the
        /// load test does), so that order and duplicates are checked per event, not per action.
        public let sequence: Int?
        /// When the request reached the mock: what fencing and order are judged by, since a
        /// real PagerDuty takes an event when it arrives, however late it answers.
        public let arrivedAt: ContinuousClock.Instant
        /// When the mock answered (after any scripted delay).
        public let receivedAt: ContinuousClock.Instant
        /// The status the mock answered.
        public let status: Int
        public let validationErrors: [String]

        /// The body as Foundation parses it (the relay's own JSON parser is not used here, so
        /// that a bug in it cannot hide from the tests); nil when it is not a JSON object.
        public var json: [String: Any]? { (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] }
    }

    /// PagerDuty's own limit, when set: calls a minute per routing key, counted over a window
    /// that looks back 60 s from each call; a call over it gets 429 and is not ingested
    /// (Events API v2 "Rate Limits"). Every call counts, throttled or not.
    private var rateLimitPerMinute: Int?
    private var recentCalls: [String: Deque<ContinuousClock.Instant>] = [:]
    private var script: Deque<Reply> = []
    private var defaultReply: Reply = .accept
    private var faults = FaultDealer()
    private let recordsBodies: Bool
    public private(set) var deliveries: [Delivery] = []
    private var serviceGroup: ServiceGroup?
    private var runTask: Task<Void, any Error>?
    public private(set) var port = 0

    /// `recordsBodies: false` keeps memory flat in long load tests (every other field is kept).
    public init(recordsBodies: Bool = true) {
        self.recordsBodies = recordsBodies
    }

    /// A PEM certificate chain and private key: the mock then speaks HTTPS only.
    public struct TLSFiles: Sendable {
        public let certificatePath: String
        public let privateKeyPath: String

        public init(certificatePath: String, privateKeyPath: String) {
            self.certificatePath = certificatePath
            self.privateKeyPath = privateKeyPath
        }
    }

    /// Starts listening on loopback (port 0 picks a free port) and returns the port.
    @discardableResult
    public func start(port requestedPort: Int = 0, tls: TLSFiles? = nil, logLevel: Logger.Level = .warning) async throws -> Int {
        var logger = Logger(label: "mock-pagerduty")
        logger.logLevel = logLevel
        let router = Router()
        for path in ["/v2/enqueue", "/v2/change/enqueue"] {
            router.post(RouterPath(path)) { [self] request, _ in
                let body = try await request.body.collect(upTo: 1_048_576)
                return await self.handle(path: path, body: Array(body.readableBytesView), term: request.headers[.init("X-PDRelay-Term")!])
            }
        }
        router.get("/ping") { _, _ in Response(status: .ok) }
        let (stream, continuation) = AsyncStream.makeStream(of: Int.self)
        var server = HTTPServerBuilder.http1()
        if let tls {
            let configuration = TLSConfiguration.makeServerConfiguration(
                certificateChain: try NIOSSLCertificate.fromPEMFile(tls.certificatePath).map { .certificate($0) },
                privateKey: .privateKey(try NIOSSLPrivateKey(file: tls.privateKeyPath, format: .pem)))
            server = try .tls(server, tlsConfiguration: configuration)
        }
        scheme = tls == nil ? "http" : "https"
        let app = Application(
            router: router, server: server,
            configuration: .init(address: .hostname("127.0.0.1", port: requestedPort), serverName: "mock-pagerduty"),
            onServerRunning: { continuation.yield($0.localAddress?.port ?? 0) }, logger: logger)
        let group = ServiceGroup(services: [app], gracefulShutdownSignals: [], logger: logger)
        serviceGroup = group
        runTask = Task { try await group.run() }
        for await boundPort in stream {
            port = boundPort
            break
        }
        return port
    }

    public func stop() async {
        await serviceGroup?.triggerGracefulShutdown()
        _ = try? await runTask?.value
    }

    private var scheme = "http"

    public var baseURL: String { "\(scheme)://127.0.0.1:\(port)" }

    /// Replies for the next requests, in order; after them, the default reply.
    public func script(_ replies: [Reply]) { script.append(contentsOf: replies) }

    public func setDefaultReply(_ reply: Reply) { defaultReply = reply }

    /// Plays PagerDuty's rate limit (nil for none, the default): see `rateLimitPerMinute`.
    public func setRateLimit(perMinute limit: Int?) {
        precondition(limit.map { $0 > 0 } ?? true, "a rate limit must be positive")
        rateLimitPerMinute = limit
        recentCalls = [:]
    }

    /// Counts a call for `routingKey` and says whether it is over PagerDuty's limit.
    private func overRateLimit(_ routingKey: String?, at arrived: ContinuousClock.Instant) -> Bool {
        guard let limit = rateLimitPerMinute, let routingKey else { return false }
        var calls = recentCalls[routingKey] ?? []
        while let first = calls.first, first <= arrived - .seconds(60) { calls.removeFirst() }
        let over = calls.count >= limit
        calls.append(arrived)
        recentCalls[routingKey] = calls
        return over
    }

    /// Replaces the fault rules; their windows count from `epoch`. A scripted reply still comes
    /// first, and a request that no rule picks gets the default reply.
    public func setFaults(_ rules: [FaultRule], epoch: ContinuousClock.Instant = .now) {
        faults = FaultDealer(rules: rules, epoch: epoch)
    }

    /// The deliveries recorded after the first `index`: a long run reads only what is new.
    public func deliveries(since index: Int) -> [Delivery] { Array(deliveries[min(index, deliveries.count)...]) }

    /// Deliveries the mock answered with 2xx.
    public var accepted: [Delivery] { deliveries.filter { (200..<300).contains($0.status) } }

    /// Waits until `count` deliveries were accepted, or fails after `timeout`.
    public func waitForAccepted(_ count: Int, timeout: Duration = .seconds(30)) async throws -> [Delivery] {
        let deadline = ContinuousClock.now + timeout
        while accepted.count < count {
            guard ContinuousClock.now < deadline else { throw WaitTimeout(expected: count, seen: accepted.count) }
            try await Task.sleep(for: .milliseconds(20))
        }
        return accepted
    }

    /// Waits until an accepted delivery satisfies `marker`, or fails after `timeout`; returns
    /// every accepted delivery up to and including it.
    public func waitForAccepted(
        until marker: @Sendable (Delivery) -> Bool, timeout: Duration = .seconds(30)
    ) async throws -> [Delivery] {
        let deadline = ContinuousClock.now + timeout
        while true {
            let accepted = self.accepted
            if let index = accepted.firstIndex(where: marker) { return Array(accepted[...index]) }
            guard ContinuousClock.now < deadline else { throw WaitTimeout(expected: accepted.count + 1, seen: accepted.count) }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Waits until a request, whatever its answer, satisfies `condition`; returns the first
    /// that does, or nil after `timeout`.
    public func waitForDelivery(
        where condition: @Sendable (Delivery) -> Bool, timeout: Duration = .seconds(60)
    ) async throws -> Delivery? {
        let deadline = ContinuousClock.now + timeout
        var seen = 0
        while ContinuousClock.now < deadline {
            if let found = deliveries[seen...].first(where: condition) { return found }
            seen = deliveries.count
            try await Task.sleep(for: .milliseconds(10))
        }
        return nil
    }

    /// Waits until every key in `dedupKeys` has been accepted at least once; returns the keys
    /// still missing when `timeout` ran out (empty when all arrived).
    public func waitUntilDelivered(dedupKeys: Set<String>, timeout: Duration) async -> Set<String> {
        let deadline = ContinuousClock.now + timeout
        var missing = dedupKeys
        var seen = 0
        while !missing.isEmpty, ContinuousClock.now < deadline {
            for delivery in deliveries[seen...] where (200..<300).contains(delivery.status) {
                if let key = delivery.dedupKey { missing.remove(key) }
            }
            seen = deliveries.count
            if !missing.isEmpty { try? await Task.sleep(for: .milliseconds(20)) }
        }
        return missing
    }

    public struct WaitTimeout: Error, CustomStringConvertible {
        public let expected: Int
        public let seen: Int
        public var description: String { "expected \(expected) accepted deliveries, saw \(seen)" }
    }

    private func handle(path: String, body: [UInt8], term: String?) async -> Response {
        let arrived = ContinuousClock.now
        var reply = script.popFirst() ?? faults.reply(at: arrived) ?? defaultReply
        let validationErrors = PagerDutyRules.errors(body: body, changeEvent: path != "/v2/enqueue")
        let json = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any]
        let routingKey = json?["routing_key"] as? String
        if overRateLimit(routingKey, at: arrived) { reply = .status(429) }
        let dedupKey = json?["dedup_key"] as? String
        let action = json?["event_action"] as? String
        let sequence = Self.sequence(in: json)
        let record = { (status: Int) in
            Delivery(
                path: path, body: self.recordsBodies ? body : [], routingKey: routingKey, dedupKey: dedupKey, action: action,
                term: term, sequence: sequence, arrivedAt: arrived, receivedAt: .now, status: status,
                validationErrors: validationErrors)
        }
        while case .delayed(let milliseconds, let inner) = reply {
            try? await Task.sleep(for: .milliseconds(milliseconds))
            reply = inner
        }
        switch reply {
        case .accept where validationErrors.isEmpty:
            deliveries.append(record(202))
            return Self.json(
                .accepted, #"{"status":"success","message":"Event processed","dedup_key":"\#(dedupKey ?? UUID().uuidString)"}"#)
        case .accept:
            deliveries.append(record(400))
            let errors = validationErrors.map { "\"\($0.replacingOccurrences(of: "\"", with: "'"))\"" }.joined(separator: ",")
            return Self.json(.badRequest, #"{"status":"invalid event","message":"Event object is invalid","errors":[\#(errors)]}"#)
        case .status(let code, let retryAfter):
            deliveries.append(record(code))
            var headers: HTTPFields = [.contentType: "application/json"]
            if let retryAfter { headers[.retryAfter] = String(retryAfter) }
            let body =
                code == 429
                ? #"{"status":"throttle exceeded","message":"Requests for this service are arriving too quickly.  Please retry later."}"#
                : #"{"status":"error","message":"scripted \#(code)","errors":["scripted \#(code)"]}"#
            return Response(status: .init(code: code), headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
        case .delayed:
            preconditionFailure("delays were unwrapped above")
        }
    }

    private static func sequence(in json: [String: Any]?) -> Int? {
        let details = (json?["payload"] as? [String: Any])?["custom_details"] as? [String: Any]
        // Foundation reads 3 and 3.0 alike; only a whole number is a sequence.
        guard let number = details?["sequence"] as? NSNumber, let value = Int(exactly: number.doubleValue) else { return nil }
        return value
    }

    private static func json(_ status: HTTPResponse.Status, _ text: String) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}
