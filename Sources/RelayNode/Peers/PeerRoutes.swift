import ClusterCore
import EngineCore
import Hummingbird
import RelayCore
import RelayReplication

/// Stamps every peer answer, refusals included, with this node's wall clock
/// (`PeerAuthenticator.timeHeader`), from which the sender measures the skew between them.
struct PeerClockMiddleware: RouterMiddleware {
    typealias Context = BasicRequestContext
    let environment: NodeEnvironment

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response = try await next(request, context)
        response.headers[.init(PeerAuthenticator.timeHeader)!] = String(environment.wallClockMilliseconds())
        return response
    }
}

/// The peer listener's HTTP API, beside the peer streams (`PeerListenerChannel`): snapshot
/// chunks and the status question. Every request is authenticated before its body is looked at.
struct PeerRoutes: Sendable {
    let engine: RelayEngine
    let snapshots: SnapshotReceiver
    let authenticator: PeerAuthenticator
    let clockSkew: ClockSkewMonitor
    let environment: NodeEnvironment

    func register(on router: Router<BasicRequestContext>) {
        router.post(RouterPath(PeerWire.snapshotPath)) { request, _ in
            let (sender, body) = try await authenticate(
                request, path: PeerWire.snapshotPath,
                upTo: RelayConfiguration.maxSnapshotChunkBytes + PeerWire.SnapshotChunk.maxHeaderBytes)
            let chunk: PeerWire.SnapshotChunk
            do {
                chunk = try PeerWire.SnapshotChunk(encoded: body)
            } catch {
                throw HTTPError(.badRequest, message: "unreadable snapshot chunk: \(error)")
            }
            let next: UInt64
            do {
                next = try await snapshots.receive(chunk, from: sender)
            } catch SnapshotReceiver.Failure.disk(let reason) {
                throw HTTPError(.init(code: 507, reasonPhrase: "Insufficient Storage"), message: "cannot stage the snapshot: \(reason)")
            } catch {
                throw HTTPError(.unprocessableContent, message: "\(error)")
            }
            return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(bytes: PeerWire.encode(offset: next))))
        }
        router.post(RouterPath(PeerWire.statusPath)) { request, _ in
            _ = try await authenticate(request, path: PeerWire.statusPath, upTo: 0)
            let view = await engine.clusterView()
            let status = PeerWire.Status(
                term: view.term, recovering: !view.mayVote && !view.awaitingDiskDecision)
            return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(bytes: status.encoded)))
        }
    }

    private func authenticate(_ request: Request, path: String, upTo limit: Int) async throws -> (NodeID, [UInt8]) {
        let body: [UInt8]
        do {
            body = Array(try await request.body.collect(upTo: limit).readableBytesView)
        } catch {
            throw HTTPError(.contentTooLarge, message: "peer request larger than \(limit) bytes")
        }
        let now = environment.wallClockMilliseconds()
        let verdict = authenticator.verify(
            method: request.method.rawValue, path: path, node: request.headers[.init(PeerAuthenticator.nodeHeader)!],
            timestamp: request.headers[.init(PeerAuthenticator.timestampHeader)!],
            signature: request.headers[.init(PeerAuthenticator.signatureHeader)!], body: body, nowMilliseconds: now)
        switch verdict {
        case .success(let (sender, sentAt)):
            clockSkew.recordRequest(from: sender, sentAtMilliseconds: sentAt, receivedAtMilliseconds: now)
            return (sender, body)
        case .failure(let failure):
            if let skew = failure.clockSkewMilliseconds,
                let sender = request.headers[.init(PeerAuthenticator.nodeHeader)!].flatMap(NodeID.init)
            {
                clockSkew.record(.peer(sender), skewMilliseconds: skew)
            }
            throw HTTPError(.unauthorized, message: "peer authentication failed: \(failure)")
        }
    }
}
