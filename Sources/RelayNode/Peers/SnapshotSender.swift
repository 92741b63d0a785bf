import ClusterCore
import Logging
import NIOConcurrencyHelpers
import RelayCore
import RelayReplication

/// A snapshot encoded once for every follower that needs it: encoding a queue of gigabytes takes
/// seconds, and the leader asks for the same snapshot again every election timeout until the
/// follower answers. The same encoding (and id) lets a transfer resume; it is let go once no
/// transfer has asked for it for `keepSeconds`, so a queue of gigabytes is not held twice.
final class SnapshotEncodings: Sendable {
    struct Encoded: Sendable {
        let index: LogIndex
        let term: Term
        let id: UInt64
        let bytes: [UInt8]
    }

    static let keepSeconds = 60

    private struct State {
        var newest: Encoded?
        /// Bumped at each use: a release scheduled before the last use does nothing.
        var uses: UInt64 = 0
    }

    private let state = NIOLockedValueBox(State())
    /// Draws each encoding's transfer id (`NodeEnvironment.seed`): a follower tells a new
    /// transfer from the resumption of an old one by it.
    private let newID: @Sendable () -> UInt64

    init(newID: @escaping @Sendable () -> UInt64) { self.newID = newID }

    func encoded(_ snapshot: Snapshot<RelayStateMachine>) -> Encoded {
        let cached = state.withLockedValue { $0.newest }
        let encoded: Encoded
        if let cached, cached.index == snapshot.index, cached.term == snapshot.term {
            encoded = cached
        } else {
            encoded = Encoded(
                index: snapshot.index, term: snapshot.term, id: max(1, newID()),
                bytes: MessageCodec.encode(snapshot: snapshot))
        }
        keep(encoded)
        return encoded
    }

    /// Keeps `encoded` (the newest unless a newer one was made) for another `keepSeconds`.
    func keep(_ encoded: Encoded) {
        let use = state.withLockedValue { state -> UInt64 in
            if (state.newest?.index ?? 0) <= encoded.index { state.newest = encoded }
            state.uses += 1
            return state.uses
        }
        Task {
            try? await Task.sleep(for: .seconds(Self.keepSeconds))
            state.withLockedValue { state in
                if state.uses == use { state.newest = nil }
            }
        }
    }
}

/// Streams a snapshot to one peer in chunks (`snapshot_chunk_bytes`), each its own signed
/// request. The follower stages them on disk and answers with the offset it wants next, so a
/// transfer broken by a reset, a timeout or a restart of either side resumes where it stopped,
/// and no request is ever larger than a chunk: the total is limited only by the follower's disk.
final class SnapshotSender: Sendable {
    /// Consecutive failed requests before the transfer is left to the protocol: the leader asks
    /// for the snapshot again (an election timeout later), and the transfer resumes.
    static let maxConsecutiveFailures = 5
    /// One chunk crossing a slow link between zones.
    static let chunkTimeoutMilliseconds: Int64 = 30_000

    let peer: NodeID
    private let client: PeerClient
    private let chunkBytes: Int
    private let encodings: SnapshotEncodings
    private let transfers: SnapshotTransfers
    private let logger: Logger
    private let closed = NIOLockedValueBox(false)

    init(
        peer: NodeID, client: PeerClient, chunkBytes: Int, encodings: SnapshotEncodings, transfers: SnapshotTransfers, logger: Logger
    ) {
        precondition(chunkBytes > 0, "snapshot chunks must hold bytes")
        self.peer = peer
        self.client = client
        self.chunkBytes = chunkBytes
        self.encodings = encodings
        self.transfers = transfers
        self.logger = logger
    }

    func close() { closed.withLockedValue { $0 = true } }

    /// Sends `snapshot` until the follower has all of it, or until requests keep failing.
    func transfer(_ snapshot: Snapshot<RelayStateMachine>, term: Term, round: UInt64) async {
        let encoded = encodings.encoded(snapshot)
        let total = UInt64(encoded.bytes.count)
        let now = client.environment.monotonicMilliseconds
        var alreadySent = false
        transfers.updateOutgoing(to: peer) { progress in
            alreadySent = progress?.finished == true && progress?.snapshotIndex == snapshot.index && progress?.totalBytes == total
            // The same snapshot asked for again (finished or not) continues its record.
            if progress?.snapshotIndex != snapshot.index || progress?.totalBytes != total {
                progress = .init(
                    node: peer, snapshotIndex: snapshot.index, bytesDone: 0, totalBytes: total, startedAtMilliseconds: now(),
                    lastProgressAtMilliseconds: now())
            }
        }
        // Unknown until the follower says: a probe (no bytes) asks where to resume.
        var offset: UInt64?
        var failures = 0
        var nextReportPercent: UInt64 = 25
        var lastKept = now()
        while !closed.withLockedValue({ $0 }) {
            let start = offset ?? 0
            let end = offset.map { min(total, $0 + UInt64(chunkBytes)) } ?? 0
            let chunk = PeerWire.SnapshotChunk(
                leaderTerm: term, round: round, snapshotIndex: encoded.index, snapshotTerm: encoded.term, encodingID: encoded.id,
                totalBytes: total, offset: start, bytes: Array(encoded.bytes[Int(start)..<Int(end)]))
            do {
                let answer = try await client.post(
                    PeerWire.snapshotPath, body: chunk.encoded, to: peer, timeoutMilliseconds: Self.chunkTimeoutMilliseconds)
                let next = try PeerWire.decodeOffset(answer)
                guard next <= total else { throw PeerRequestFailure("the follower asked for offset \(next) of \(total) bytes") }
                if offset == nil && failures == 0 && next < total {
                    logger.notice(
                        "sending a snapshot to a follower that is too far behind for the log",
                        metadata: [
                            "peer": "\(peer)", "snapshot_index": "\(encoded.index)", "bytes": "\(total)", "resume_at": "\(next)",
                            "chunk_bytes": "\(chunkBytes)",
                        ])
                }
                offset = next
                failures = 0
                // A transfer under way keeps its encoding, so a later attempt can resume it.
                if now() - lastKept >= 10_000 {
                    encodings.keep(encoded)
                    lastKept = now()
                }
                transfers.updateOutgoing(to: peer) { progress in
                    if next != progress?.bytesDone { progress?.lastProgressAtMilliseconds = now() }
                    progress?.bytesDone = next
                    progress?.transmittedBytes += UInt64(chunk.bytes.count)
                    progress?.lastError = nil
                    progress?.finished = next == total
                }
                if total > 0, next < total, next * 100 / total >= nextReportPercent {
                    logger.info(
                        "snapshot transfer progress",
                        metadata: ["peer": "\(peer)", "snapshot_index": "\(encoded.index)", "sent_bytes": "\(next)", "bytes": "\(total)"])
                    nextReportPercent = (next * 100 / total / 25 + 1) * 25
                }
                if next == total {
                    // Asked again while the follower installs it: it already had everything.
                    guard !alreadySent else { return }
                    let progress = transfers.outgoing[peer]
                    logger.notice(
                        "snapshot sent",
                        metadata: [
                            "peer": "\(peer)", "snapshot_index": "\(encoded.index)", "bytes": "\(total)",
                            "duration_ms": "\(now() - (progress?.startedAtMilliseconds ?? now()))",
                            "transmitted_bytes": "\(progress?.transmittedBytes ?? 0)", "interruptions": "\(progress?.interruptions ?? 0)",
                        ])
                    return
                }
            } catch {
                failures += 1
                transfers.updateOutgoing(to: peer) { progress in
                    progress?.lastError = "\(error)"
                    progress?.interruptions += 1
                }
                if failures == 1 {
                    logger.warning(
                        "snapshot transfer interrupted; it resumes where the follower left off",
                        metadata: ["peer": "\(peer)", "snapshot_index": "\(encoded.index)", "error": "\(error)"])
                }
                if failures >= Self.maxConsecutiveFailures { return }
                offset = nil
                try? await Task.sleep(for: .milliseconds(100 * failures))
            }
        }
    }
}
