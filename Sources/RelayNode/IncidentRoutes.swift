import Foundation
import Hummingbird
import RelayCore

/// `GET /v1/incidents` and `GET /v1/incidents/{dedup_key}`: the incident folders, read from this
/// node's copy of the replicated state (a follower's may trail the leader's by its lag). Reads
/// need `admin_token` when one is set, like the queue API.
struct IncidentRoutes: Sendable {
    let engine: RelayEngine
    /// `admin_token`, and `admin_token_next` during a rotation.
    let adminTokens: [String]
    static let defaultListLimit = 100
    static let maxListLimit = 1_000
    static let knownListParameters: Set<String> = ["state", "routing_key", "source", "limit", "cursor"]

    func register(on router: Router<ClientRequestContext>) {
        let incidents = router.group("/v1/incidents").add(middleware: AdminTokenMiddleware(tokens: adminTokens))
        incidents.get { request, _ in
            let query = request.uri.queryParameters
            try Self.refuseUnknown(query, known: Self.knownListParameters)
            let filter = try Self.filter(query)
            let limit = try Self.limit(query)
            let before = try Self.cursor(query)
            // One more than asked for says whether another page follows.
            let folders = await engine.folders(matching: filter, before: before, limit: limit + 1)
            let page = folders.prefix(limit)
            return try QueueRoutes.encode(
                IncidentPage(
                    incidents: page.map(IncidentSummary.init),
                    nextCursor: folders.count > limit ? page.last.map { String($0.sequence) } : nil))
        }
        // The rest of the path, so that a templated key such as `plc-7/pump-2` is found whether
        // its slash is sent as it is or as `%2F`.
        incidents.get("/**") { request, context in
            let query = request.uri.queryParameters
            try Self.refuseUnknown(query, known: ["routing_key"])
            let path = context.parameters.getCatchAll().joined(separator: "/")
            let dedupKey = path.removingPercentEncoding ?? path
            let filter = IncidentFilter(routingKey: query["routing_key"].map(String.init), dedupKey: dedupKey)
            let folders = await engine.folders(matching: filter, before: .max, limit: 2)
            guard let folder = folders.first else {
                throw HTTPError(
                    .notFound,
                    message:
                        "No incident folder for dedup_key '\(dedupKey.prefix(255))'; folders past max_incident_folders are forgotten, least recently changed first"
                )
            }
            guard folders.count == 1 else {
                throw HTTPError(
                    .conflict, message: "dedup_key '\(dedupKey.prefix(255))' names incidents under several routing keys: add ?routing_key=")
            }
            return try QueueRoutes.encode(IncidentDetail(folder))
        }
    }

    static func refuseUnknown(_ query: Hummingbird.Parameters, known: Set<String>) throws {
        for (name, _) in query where !known.contains(String(name)) {
            throw HTTPError(
                .badRequest,
                message: "Unknown parameter '\(name.prefix(64))'; this endpoint takes \(known.sorted().joined(separator: ", "))")
        }
    }

    static func filter(_ query: Hummingbird.Parameters) throws -> IncidentFilter {
        var filter = IncidentFilter(routingKey: query["routing_key"].map(String.init), source: query["source"].map(String.init))
        if let states = query["state"] {
            var parsed: Set<IncidentFolder.State> = []
            for name in states.split(separator: ",") {
                guard let state = IncidentFolder.State(rawValue: String(name)) else {
                    throw HTTPError(
                        .badRequest,
                        message: "state must be open, acknowledged or resolved (or several, comma-separated), not '\(name.prefix(64))'")
                }
                parsed.insert(state)
            }
            filter.states = parsed
        }
        return filter
    }

    static func limit(_ query: Hummingbird.Parameters) throws -> Int {
        guard let text = query["limit"] else { return defaultListLimit }
        guard let limit = Int(text), (1...maxListLimit).contains(limit) else {
            throw HTTPError(.badRequest, message: "limit must be 1-\(maxListLimit), not '\(text.prefix(64))'")
        }
        return limit
    }

    /// The cursor is the last folder's sequence on the previous page; the next page starts below it.
    static func cursor(_ query: Hummingbird.Parameters) throws -> UInt64 {
        guard let text = query["cursor"] else { return .max }
        guard let cursor = UInt64(text) else {
            throw HTTPError(.badRequest, message: "cursor must be a next_cursor from a previous page, not '\(text.prefix(64))'")
        }
        return cursor
    }
}
