import Hummingbird
import RelayCore

/// `/v1/maintenance-windows`: start, list, change and end maintenance windows. Every change is
/// a replicated command, timed by the wall clock of the node that takes the request. Guarded by
/// `admin_token` (changes always, reads when one is set), like the queue API.
struct MaintenanceRoutes: Sendable {
    let engine: RelayEngine
    let commands: CommandRouter
    let environment: NodeEnvironment
    /// `admin_token`, and `admin_token_next` during a rotation.
    let adminTokens: [String]
    static let maxBodyBytes = 64 * 1_024
    static let specFields: Set<String> = ["start", "end", "duration_minutes", "routing_keys", "source_pattern", "reason", "hold"]

    func register(on router: Router<ClientRequestContext>) {
        let windows = router.group("/v1/maintenance-windows").add(middleware: AdminTokenMiddleware(tokens: adminTokens))
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
            let spec = try Self.spec(try await Self.body(request), now: now)
            return try await respond(to: .openWindow(spec, atMilliseconds: now), created: true)
        }
        windows.patch("/:id") { request, context in
            let id = try Self.id(context)
            let change = try Self.change(try await Self.body(request))
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
            // The window as the leader applied it; what it holds by this node's copy (a changed
            // window keeps what it held unless the change released it).
            let holding = await engine.holding(inWindow: window.id)
            var response = try QueueRoutes.encode(MaintenanceWindowView(window, holding: holding, atMilliseconds: now))
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

    static func id(_ context: ClientRequestContext) throws -> UInt64 {
        guard let text = context.parameters.get("id"), let id = UInt64(text) else {
            throw HTTPError(.badRequest, message: "A maintenance window's id is a number, as `pdrelay maintenance list` shows")
        }
        return id
    }

    static func body(_ request: Request) async throws -> OperatorRequestBody {
        try await OperatorRequestBody(request, known: specFields, maxBytes: maxBodyBytes)
    }

    static func spec(_ body: OperatorRequestBody, now: Int64) throws -> MaintenanceWindow.Spec {
        let start = try time(body, "start") ?? now
        let maxMinutes = MaintenanceWindow.maxDurationMilliseconds / 60_000
        let end: Int64
        switch (try time(body, "end"), try body.integer("duration_minutes", in: 1...maxMinutes)) {
        case (let given?, nil): end = given
        case (nil, let minutes?): end = start + minutes * 60_000
        case (nil, nil), (.some, .some):
            throw HTTPError(.badRequest, message: "Give the window either an end (RFC 3339) or a duration_minutes")
        }
        guard let reason = try body.string("reason") else { throw HTTPError(.badRequest, message: "A window needs a reason") }
        return MaintenanceWindow.Spec(
            startsAtMilliseconds: start, endsAtMilliseconds: end, routingKeys: try body.strings("routing_keys") ?? [],
            sourcePattern: try body.string("source_pattern"), reason: reason, hold: try body.bool("hold") ?? false)
    }

    static func change(_ body: OperatorRequestBody) throws -> MaintenanceWindow.Change {
        guard !body.has("duration_minutes") else {
            throw HTTPError(.badRequest, message: "To change how long a window lasts, give its new end (RFC 3339)")
        }
        // `"source_pattern": null` removes the pattern; a missing field leaves it.
        let pattern: String?? = body.has("source_pattern") ? .some(try body.string("source_pattern")) : nil
        return MaintenanceWindow.Change(
            startsAtMilliseconds: try time(body, "start"), endsAtMilliseconds: try time(body, "end"),
            routingKeys: try body.strings("routing_keys"), sourcePattern: pattern, reason: try body.string("reason"),
            hold: try body.bool("hold"))
    }

    private static func time(_ body: OperatorRequestBody, _ name: String) throws -> Int64? {
        guard let text = try body.string(name) else { return nil }
        guard let milliseconds = MaintenanceWindowView.milliseconds(rfc3339: text) else {
            throw HTTPError(.badRequest, message: "\(name) must be an RFC 3339 time, such as 2026-12-04T22:00:00Z")
        }
        return milliseconds
    }
}
