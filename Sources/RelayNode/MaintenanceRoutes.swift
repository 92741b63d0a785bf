import Hummingbird
import RelayCore

/// `/v1/maintenance-windows`: start, list, change and end maintenance windows. Every change is
/// a replicated command, timed by the wall clock of the node that takes the request. Guarded by
/// `admin_token` (changes always, reads when one is set), like the queue API.
struct MaintenanceRoutes: Sendable {
    let engine: RelayEngine
    let commands: CommandRouter
    let environment: NodeEnvironment
    let adminToken: String?
    static let maxBodyBytes = 64 * 1_024
    static let specFields: Set<String> = ["start", "end", "duration_minutes", "routing_keys", "source_pattern", "reason", "hold"]

    func register(on router: Router<BasicRequestContext>) {
        let windows = router.group("/v1/maintenance-windows").add(middleware: AdminTokenMiddleware(token: adminToken))
        windows.get { _, _ in
            try QueueRoutes.encode(
                MaintenanceWindowList(windows: await engine.maintenanceWindows(atWallClock: environment.wallClockMilliseconds())))
        }
        windows.get("/:id") { _, context in
            let id = try Self.id(context)
            guard
                let window = await engine.maintenanceWindows(atWallClock: environment.wallClockMilliseconds()).first(where: { $0.id == id })
            else { throw HTTPError(.notFound, message: "No maintenance window \(id); ended windows are listed for a day") }
            return try QueueRoutes.encode(window)
        }
        windows.post { request, _ in
            let now = environment.wallClockMilliseconds()
            let spec = try Self.spec(try await Self.object(request), now: now)
            return try await respond(to: .openWindow(spec, atMilliseconds: now), created: true)
        }
        windows.patch("/:id") { request, context in
            let id = try Self.id(context)
            let change = try Self.change(try await Self.object(request))
            return try await respond(to: .changeWindow(id: id, change, atMilliseconds: environment.wallClockMilliseconds()))
        }
        windows.delete("/:id") { _, context in
            let id = try Self.id(context)
            return try await respond(to: .endWindow(id: id, atMilliseconds: environment.wallClockMilliseconds()))
        }
    }

    private func respond(to command: RelayCommand, created: Bool = false) async throws -> Response {
        let result: CommandResult
        do {
            result = try await commands.submit(command)
        } catch {
            throw HTTPError(.serviceUnavailable, message: "The command was not applied: \(IngestRoutes.explain(error))")
        }
        let now = environment.wallClockMilliseconds()
        switch result {
        case .windowSaved(let window):
            var response = try QueueRoutes.encode(MaintenanceWindowView(window, holding: 0, atMilliseconds: now))
            if created { response.status = .created }
            return response
        case .windowEnded(let window, let released):
            return try QueueRoutes.encode(
                MaintenanceWindowEnded(window: MaintenanceWindowView(window, holding: 0, atMilliseconds: now), released: released))
        case .windowRefused(let error):
            throw HTTPError(error)
        case let other:
            preconditionFailure("a maintenance window command returned \(other)")
        }
    }

    static func id(_ context: BasicRequestContext) throws -> UInt64 {
        guard let text = context.parameters.get("id"), let id = UInt64(text) else {
            throw HTTPError(.badRequest, message: "A maintenance window's id is a number, as `pdrelay maintenance list` shows")
        }
        return id
    }

    static func object(_ request: Request) async throws -> [String: JSONValue] {
        let body = try await request.body.collect(upTo: maxBodyBytes)
        guard case .object(let object)? = try? JSONValue.parse(Array(body.readableBytesView)) else {
            throw HTTPError(.badRequest, message: "The body must be a JSON object")
        }
        for name in object.keys where !specFields.contains(name) {
            throw HTTPError(
                .badRequest, message: "Unknown field '\(name.prefix(64))'; a window has \(specFields.sorted().joined(separator: ", "))")
        }
        return object
    }

    static func spec(_ object: [String: JSONValue], now: Int64) throws -> MaintenanceWindow.Spec {
        let start = try time(object, "start") ?? now
        let end: Int64
        switch (try time(object, "end"), object["duration_minutes"]) {
        case (let given?, nil): end = given
        case (nil, .integer(let minutes)?) where minutes > 0 && minutes <= MaintenanceWindow.maxDurationMilliseconds / 60_000:
            end = start + minutes * 60_000
        case (nil, nil), (.some, .some):
            throw HTTPError(.badRequest, message: "Give the window either an end (RFC 3339) or a duration_minutes")
        case (nil, .some):
            throw HTTPError(
                .badRequest, message: "duration_minutes must be a whole number, 1-\(MaintenanceWindow.maxDurationMilliseconds / 60_000)")
        }
        guard let reason = try string(object, "reason") else { throw HTTPError(.badRequest, message: "A window needs a reason") }
        return MaintenanceWindow.Spec(
            startsAtMilliseconds: start, endsAtMilliseconds: end, routingKeys: try strings(object, "routing_keys") ?? [],
            sourcePattern: try string(object, "source_pattern"), reason: reason, hold: try bool(object, "hold") ?? false)
    }

    static func change(_ object: [String: JSONValue]) throws -> MaintenanceWindow.Change {
        guard object["duration_minutes"] == nil else {
            throw HTTPError(.badRequest, message: "To change how long a window lasts, give its new end (RFC 3339)")
        }
        // `"source_pattern": null` removes the pattern; a missing field leaves it.
        let pattern: String?? = object["source_pattern"] == nil ? nil : .some(try string(object, "source_pattern"))
        return MaintenanceWindow.Change(
            startsAtMilliseconds: try time(object, "start"), endsAtMilliseconds: try time(object, "end"),
            routingKeys: try strings(object, "routing_keys"), sourcePattern: pattern, reason: try string(object, "reason"),
            hold: try bool(object, "hold"))
    }

    private static func time(_ object: [String: JSONValue], _ name: String) throws -> Int64? {
        guard let value = object[name] else { return nil }
        guard let text = value.stringValue, let milliseconds = MaintenanceWindowView.milliseconds(rfc3339: text) else {
            throw HTTPError(.badRequest, message: "\(name) must be an RFC 3339 time, such as 2026-12-04T22:00:00Z")
        }
        return milliseconds
    }

    private static func string(_ object: [String: JSONValue], _ name: String) throws -> String? {
        guard let value = object[name], value != .null else { return nil }
        guard let text = value.stringValue else { throw HTTPError(.badRequest, message: "\(name) must be a string") }
        return text
    }

    private static func strings(_ object: [String: JSONValue], _ name: String) throws -> [String]? {
        guard let value = object[name] else { return nil }
        guard case .array(let items) = value, let texts = Optional(items.compactMap(\.stringValue)), texts.count == items.count else {
            throw HTTPError(.badRequest, message: "\(name) must be an array of strings")
        }
        return texts
    }

    private static func bool(_ object: [String: JSONValue], _ name: String) throws -> Bool? {
        guard let value = object[name] else { return nil }
        guard case .bool(let flag) = value else { throw HTTPError(.badRequest, message: "\(name) must be true or false") }
        return flag
    }
}
