import Hummingbird
import RelayCore

/// `/v1/heartbeats`: a source checks in with `POST /v1/heartbeats/{name}`, authorised like an
/// event by the routing key it carries; an operator creates or changes a heartbeat with `PUT`,
/// removes it with `DELETE` (both need `admin_token`) and lists them with `GET`.
struct HeartbeatRoutes: Sendable {
    let engine: RelayEngine
    let commands: CommandRouter
    let environment: NodeEnvironment
    /// `admin_token`, and `admin_token_next` during a rotation.
    let adminTokens: [String]
    static let maxBodyBytes = 16 * 1_024

    func register(on router: Router<ClientRequestContext>) {
        router.post("/v1/heartbeats/:name") { request, context in
            let name = try context.parameters.require("name")
            let body = try await OperatorRequestBody(request, known: ["routing_key", "interval_seconds"], maxBytes: Self.maxBodyBytes)
            guard let routingKey = try body.string("routing_key") else {
                throw HTTPError(.badRequest, message: "A check-in carries the heartbeat's routing_key")
            }
            let interval = try Self.milliseconds(body, "interval_seconds")
            return try await respond(
                to: .checkIn(
                    name: name, routingKey: routingKey, intervalMilliseconds: interval, atMilliseconds: environment.wallClockMilliseconds())
            )
        }
        let admin = router.group("/v1/heartbeats").add(middleware: AdminTokenMiddleware(tokens: adminTokens))
        admin.get { _, _ in
            try QueueRoutes.encode(HeartbeatList(heartbeats: await engine.heartbeatsToWatch().heartbeats.map(HeartbeatView.init)))
        }
        admin.get("/:name") { _, context in
            let name = try context.parameters.require("name")
            guard let heartbeat = await engine.heartbeatsToWatch().heartbeats.first(where: { $0.name == name }) else {
                throw HTTPError(.notFound, message: "No heartbeat \(name.prefix(128))")
            }
            return try QueueRoutes.encode(HeartbeatView(heartbeat))
        }
        admin.put("/:name") { request, context in
            let name = try context.parameters.require("name")
            let body = try await OperatorRequestBody(
                request, known: ["routing_key", "interval_seconds", "grace_seconds", "severity", "source"], maxBytes: Self.maxBodyBytes)
            guard let routingKey = try body.string("routing_key") else {
                throw HTTPError(.badRequest, message: "A heartbeat needs the routing_key its alarms go to")
            }
            guard let interval = try Self.milliseconds(body, "interval_seconds") else {
                throw HTTPError(.badRequest, message: "A heartbeat needs interval_seconds: how often its source checks in")
            }
            let severity = try body.string("severity").map { text in
                guard let severity = Severity(rawValue: text) else {
                    throw HTTPError(.badRequest, message: "severity must be critical, error, warning or info")
                }
                return severity
            }
            let spec = Heartbeat.Spec(
                routingKey: routingKey, intervalMilliseconds: interval,
                // By default a check-in may be a fifth of the interval late before it counts as missed.
                graceMilliseconds: try Self.milliseconds(body, "grace_seconds") ?? interval / 5, severity: severity ?? .critical,
                source: try body.string("source") ?? name)
            return try await respond(to: .putHeartbeat(name: name, spec, atMilliseconds: environment.wallClockMilliseconds()))
        }
        admin.delete("/:name") { _, context in
            let name = try context.parameters.require("name")
            return try await respond(to: .deleteHeartbeat(name: name, atMilliseconds: environment.wallClockMilliseconds()))
        }
    }

    private func respond(to command: RelayCommand) async throws -> Response {
        let result: CommandResult
        do {
            result = try await commands.submit(command)
        } catch {
            throw HTTPError(.serviceUnavailable, message: "The command was not applied: \(IngestRoutes.explain(error))")
        }
        switch result {
        case .heartbeatSaved(let heartbeat), .heartbeatUpdated(let heartbeat), .heartbeatDeleted(let heartbeat):
            return try QueueRoutes.encode(HeartbeatView(heartbeat))
        case .heartbeatRefused(let error):
            throw HTTPError(error)
        case .queueFull:
            throw HTTPError(.serviceUnavailable, message: "Queue Full: the alarm's resolve could not be queued; check in again later")
        case let other:
            preconditionFailure("a heartbeat command returned \(other)")
        }
    }

    /// A whole number of seconds, as milliseconds; the state machine checks the range it allows.
    static func milliseconds(_ body: OperatorRequestBody, _ name: String) throws -> Int64? {
        try body.integer(name, in: 0...Heartbeat.maxIntervalMilliseconds / 1_000).map { $0 * 1_000 }
    }
}
