import ClusterCore
import Hummingbird
import RelayCore

/// Liveness, readiness and metrics, for load balancers, supervisors and Prometheus.
struct OperationsRoutes: Sendable {
    let engine: RelayEngine
    let metrics: NodeMetrics
    let readiness: Readiness
    let members: [ClusterMember]
    let transfers: SnapshotTransfers
    let clockSkew: ClockSkewMonitor

    /// A peer behind the leader whose catch-up has moved neither its match index nor a snapshot
    /// byte for this long is named in `/v1/cluster`'s problems.
    static let catchUpStuckMilliseconds: Int64 = 30_000
    /// A peer silent this long is named as not answering.
    static let peerSilentMilliseconds: Int64 = 5_000

    func register(on router: Router<ClientRequestContext>) {
        // Live means the process should keep running: false only once the store has failed,
        // after which only a restart (from disk) helps.
        router.get("/healthz") { _, _ in
            if let failure = await engine.storeFailure {
                return JSONResponses.json(.serviceUnavailable, .object(["status": "failed", "reason": .string(failure)]))
            }
            return JSONResponses.json(.ok, .object(["status": "ok"]))
        }
        // Ready means send me events: the store takes a synced write, the queue has room, and in
        // a cluster this node is in touch with a majority, knows the leader and has caught up.
        router.get("/readyz") { _, _ in await readiness(asLeader: false) }
        // Ready, and the leader holding its lease: HAProxy's primary servers check this, so
        // clients reach the leader directly (no forward hop), and a frozen leader, which
        // answers nothing, leaves the pool within a few checks.
        router.get("/readyz/leader") { _, _ in await readiness(asLeader: true) }
        router.get("/v1/cluster") { _, _ in JSONResponses.json(.ok, await clusterDescription()) }
        router.get("/metrics") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: metrics.render())))
        }
    }
}

extension OperationsRoutes {
    /// `/v1/cluster`'s answer, which `/v1/status` includes.
    func clusterDescription() async -> JSONValue {
        Self.describe(
            await engine.clusterView(), members: members, maxLag: readiness.readinessMaxLagEntries, transfers: transfers,
            clockSkew: clockSkew)
    }

    private func readiness(asLeader: Bool) async -> Response {
        let problems = await readiness.problems(asLeader: asLeader)
        return problems.isEmpty
            ? JSONResponses.json(.ok, .object(["status": "ready"]))
            : JSONResponses.json(.serviceUnavailable, .object(["status": "not ready", "problems": .array(problems.map(JSONValue.string))]))
    }

    static func clusterProblems(_ view: RelayEngine.ClusterView, maxLag: Int) -> [String] {
        var problems: [String] = []
        if view.awaitingDiskDecision { problems.append("fresh node: asking its peers whether the cluster is new") }
        if !view.mayVote && !view.awaitingDiskDecision { problems.append("recovering from an empty disk: catching up with the leader") }
        if !view.hasQuorumContact { problems.append("not in contact with a majority of the cluster") }
        if view.leaderID == nil { problems.append("no leader known") }
        if view.applyLag > LogIndex(maxLag) {
            problems.append("\(view.applyLag) committed entries behind the leader (readiness_max_lag_entries is \(maxLag))")
        }
        return problems
    }

    /// What the leader finds wrong with its followers' catch-up: a peer that does not answer, or
    /// one that answers but whose catch-up has stood still (not part of readiness: the leader
    /// itself still serves).
    static func peerProblems(_ view: RelayEngine.ClusterView, outgoing: [NodeID: SnapshotTransfers.Progress]) -> [String] {
        guard view.role == .leader else { return [] }
        var problems: [String] = []
        for peer in view.peers where peer.matchIndex < view.commitIndex {
            let behind = view.commitIndex - peer.matchIndex
            let silent = peer.lastContactMilliseconds.map { view.nowMilliseconds - $0 }
            if silent.map({ $0 >= peerSilentMilliseconds }) ?? true {
                problems.append(
                    "node \(peer.id) is not answering\(silent.map { " (silent for \($0 / 1_000) s)" } ?? ""), \(behind) entries behind")
                continue
            }
            let transfer = peer.needsSnapshot ? outgoing[peer.id] : nil
            let lastMove = max(peer.matchAdvancedAtMilliseconds, transfer?.lastProgressAtMilliseconds ?? .min)
            let still = view.nowMilliseconds - lastMove
            guard still >= catchUpStuckMilliseconds else { continue }
            var problem = "catch-up of node \(peer.id) is stuck: \(behind) entries behind, no progress for \(still / 1_000) s"
            if let transfer { problem += "; snapshot at \(transfer.bytesDone) of \(transfer.totalBytes) bytes" }
            if let error = transfer?.lastError { problem += "; last error: \(error)" }
            problems.append(problem)
        }
        return problems
    }

    static func describe(_ progress: SnapshotTransfers.Progress, now: Int64) -> JSONValue {
        .object([
            "node": .number(Double(progress.node)), "snapshot_index": .number(Double(progress.snapshotIndex)),
            "bytes_done": .number(Double(progress.bytesDone)), "bytes_total": .number(Double(progress.totalBytes)),
            "finished": .bool(progress.finished), "transmitted_bytes": .number(Double(progress.transmittedBytes)),
            "interruptions": .number(Double(progress.interruptions)), "running_ms": .number(Double(now - progress.startedAtMilliseconds)),
            "last_progress_ms_ago": .number(Double(now - progress.lastProgressAtMilliseconds)),
            "last_error": progress.lastError.map(JSONValue.string) ?? .null,
        ])
    }

    /// `GET /v1/cluster`: this node's view, for operators and for `docs/operations.md`.
    static func describe(
        _ view: RelayEngine.ClusterView, members: [ClusterMember], maxLag: Int, transfers: SnapshotTransfers, clockSkew: ClockSkewMonitor
    ) -> JSONValue {
        let outgoing = transfers.outgoing
        let peers: [JSONValue] = members.filter { $0.id != view.nodeID }.map { member in
            let progress = view.peers.first { $0.id == member.id }
            var fields: [String: JSONValue] = ["id": .number(Double(member.id)), "url": .string(member.url)]
            if let progress {
                fields["match_index"] = .number(Double(progress.matchIndex))
                fields["lag_entries"] = .number(Double(view.lastLogIndex - min(progress.matchIndex, view.lastLogIndex)))
                fields["last_contact_ms_ago"] =
                    progress.lastContactMilliseconds.map { .number(Double(view.nowMilliseconds - $0)) } ?? .null
                fields["needs_snapshot"] = .bool(progress.needsSnapshot)
                fields["match_advanced_ms_ago"] = .number(Double(view.nowMilliseconds - progress.matchAdvancedAtMilliseconds))
                if let transfer = outgoing[member.id] { fields["snapshot_transfer"] = describe(transfer, now: view.nowMilliseconds) }
            }
            return .object(fields)
        }
        let problems = members.count > 1 ? clusterProblems(view, maxLag: maxLag) : []
        let catchUp = members.count > 1 ? peerProblems(view, outgoing: outgoing) : []
        // Not part of readiness: leases run on monotonic time, and a skewed peer only stops
        // counting once it is cut off, which the problems above then name.
        let skews = clockSkew.problems()
        return .object([
            "node_id": .number(Double(view.nodeID)), "role": .string(view.role.rawValue), "term": .number(Double(view.term)),
            "leader_id": view.leaderID.map { .number(Double($0)) } ?? .null,
            "lease_remaining_ms": .number(Double(view.leaseRemainingMilliseconds)), "commit_index": .number(Double(view.commitIndex)),
            "applied_index": .number(Double(view.appliedIndex)), "last_log_index": .number(Double(view.lastLogIndex)),
            "snapshot_index": .number(Double(view.snapshotIndex)), "apply_lag_entries": .number(Double(view.applyLag)),
            "in_contact_with_majority": .bool(view.hasQuorumContact), "voting": .bool(view.mayVote),
            "peers": .array(peers), "ready": .bool(problems.isEmpty),
            "problems": .array((problems + catchUp + skews).map(JSONValue.string)),
            "clock_skew": .object(
                Dictionary(
                    uniqueKeysWithValues: clockSkew.measurements().map { ($0.source.label, JSONValue.number(Double($0.skewMilliseconds))) })
            ),
            "max_clock_skew_ms": .number(Double(clockSkew.boundMilliseconds)),
            "incoming_snapshot": transfers.incoming.map { describe($0, now: view.nowMilliseconds) } ?? .null,
        ])
    }
}

/// Turns every error, including unknown paths and methods, into a JSON body in PagerDuty's
/// error shape, so no client ever has to parse an empty or HTML answer.
struct JSONErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPResponseError {
            let message =
                switch (error.status, (error as? HTTPError)?.body) {
                case (_, let body?): body
                case (.notFound, nil): "No such endpoint: \(request.method) \(request.uri.path)"
                case (.methodNotAllowed, nil): "Method \(request.method) is not allowed on \(request.uri.path)"
                default: error.status.reasonPhrase
                }
            return JSONResponses.error(error.status, IngestError(status: error.status.reasonPhrase, message: message, errors: [message]))
        }
    }
}
