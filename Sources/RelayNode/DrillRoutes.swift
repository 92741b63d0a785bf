import EngineCore
import Foundation
import Hummingbird
import RelayCore

/// What `pdrelay drill` needs from the cluster: `POST /v1/cluster/handover` asks the leader to
/// hand leadership over (deliveries in flight end first); `POST /v1/drills` records a drill's
/// measurements in the replicated state; `GET /v1/drills` lists them. Changing state needs the
/// admin token; the list is open like `/v1/status`, which shows it too.
struct DrillRoutes: Sendable {
    let engine: RelayEngine
    let commands: CommandRouter
    let adminTokens: [String]
    static let maxBodyBytes = 8 * 1_024

    func register(on router: Router<ClientRequestContext>) {
        router.get("/v1/drills") { _, _ in try QueueRoutes.encode(DrillList(drills: await engine.drills.reversed())) }
        let admin = router.group("/v1").add(middleware: AdminTokenMiddleware(tokens: adminTokens))
        admin.post("/cluster/handover") { _, _ in
            let view = await engine.clusterView()
            guard await engine.handOver() else {
                let leader = view.leaderID.map { "node \($0) leads: send this to it" } ?? "no leader is known"
                throw HTTPError(.conflict, message: "node \(view.nodeID) is not a cluster leader free to hand over (\(leader))")
            }
            return JSONResponses.json(
                .accepted,
                .object(["status": .string("handing over"), "from": .integer(Int64(view.nodeID)), "term": .integer(Int64(view.term))]))
        }
        admin.post("/drills") { request, _ in
            let body = try await request.body.collect(upTo: Self.maxBodyBytes)
            let decoder = JSONDecoder()
            decoder.keyDecodingStrategy = .convertFromSnakeCase
            let drill: DrillRecord
            do {
                drill = try decoder.decode(DrillRecord.self, from: Data(buffer: body))
            } catch {
                throw HTTPError(.badRequest, message: "not a drill record: \(error)")
            }
            let result: CommandResult
            do throws(EngineError) {
                result = try await commands.submit(.recordDrill(drill))
            } catch {
                throw HTTPError(.serviceUnavailable, message: "The drill was not recorded: \(IngestRoutes.explain(error))")
            }
            switch result {
            case .drillRecorded(let recorded): return try QueueRoutes.encode(recorded)
            case .drillRefused(let error): throw HTTPError(error)
            default: preconditionFailure("recordDrill returned \(result)")
            }
        }
    }
}

/// `GET /v1/drills`: newest first.
struct DrillList: Codable, Sendable {
    let drills: [DrillRecord]
}
