import Hummingbird
import RelayCore

/// `/v1/heartbeats`: a source checks in with `POST /v1/heartbeats/{name}`, authorised like an
/// event by the routing key it carries; an operator creates or changes a heartbeat with `PUT`,
/// removes it with `DELETE` (both need `admin_token`) and lists them with `GET`.
struct HeartbeatRoutes: Sendable {
    let engine: RelayEngine
    let commands: CommandRouter
    let environment: NodeEnvironment
    let adminToken: String?
    static let maxBodyBytes = 16 * 1_024

    func register(on router: Router<BasicRequestContext>) {
        router.post("/v1/heartbeats/:name") { request, context in
            let name = try context.parameters.require("name")
            let object = try await Self.object(request, known: ["routing_key", "interval_seconds"])
            guard let routingKey = object["routing_key"]?.stringValue else {
                throw HTTPError(.badRequest, message: "A check-in carries the heartbeat's routing_key")
            }
            let interval = try Self.seconds(object, "interval_seconds")
            return try await respond(
                to: .checkIn(
                    name: name, routingKey: routingKey, intervalMilliseconds: interval, atMilliseconds: environment.wallClockMilliseconds())
            )
        }
        let admin = router.group("/v1/heartbeats").add(middleware: AdminTokenMiddleware(token: adminToken))
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
            let object = try await Self.object(
                request, known: ["routing_key", "interval_seconds", "grace_seconds", "severity", "source"])
            guard let routingKey = object["routing_key"]?.stringValue else {
                throw HTTPError(.badRequest, message: "A heartbeat needs the routing_key its alarms go to")
            }
            guard let interval = try Self.seconds(object, "interval_seconds") else {
                throw HTTPError(.badRequest, message: "A heartbeat needs interval_seconds: how often its source checks in")
            }
            let severity = try object["severity"].map { value in
                guard let text = value.stringValue, let severity = Severity(rawValue: text) else {
                    throw HTTPError(.badRequest, message: "severity must be critical, error, warning or info")
                }
                return severity
            }
            let spec = Heartbeat.Spec(
                routingKey: routingKey, intervalMilliseconds: interval,
                // By default a check-in may be a fifth of the interval late before it counts as missed.
                graceMilliseconds: try Self.seconds(object, "grace_seconds") ?? interval / 5, severity: severity ?? .critical,
                source: object["source"]?.stringValue ?? name)
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

    static func object(_ request: Request, known: Set<String>) async throws -> [String: JSONValue] {
        let body = try await request.body.collect(upTo: maxBodyBytes)
        guard case .object(let object)? = try? JSONValue.parse(Array(body.readableBytesView)) else {
            throw HTTPError(.badRequest, message: "The body must be a JSON object")
        }
        for name in object.keys where !known.contains(name) {
            throw HTTPError(
                .badRequest, message: "Unknown field '\(name.prefix(64))'; this takes \(known.sorted().joined(separator: ", "))")
        }
        return object
    }

    /// A whole number of seconds, as milliseconds.
    static func seconds(_ object: [String: JSONValue], _ name: String) throws -> Int64? {
        guard let value = object[name] else { return nil }
        guard case .integer(let seconds) = value, (0...Heartbeat.maxIntervalMilliseconds / 1_000).contains(seconds) else {
            throw HTTPError(.badRequest, message: "\(name) must be a whole number of seconds")
        }
        return seconds * 1_000
    }
}
