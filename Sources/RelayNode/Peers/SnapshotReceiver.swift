import ClusterCore
import Foundation
import Logging
import RelayCore
import RelayReplication

/// A follower's half of a chunked snapshot transfer. Chunks are staged in a file in the data
/// directory, so a snapshot is limited only by the disk; when the last one arrives the snapshot
/// is decoded and handed to the engine as the leader's `installSnapshot`. Every answer is the
/// offset this node wants next, so the leader resumes a broken transfer where it stopped.
actor SnapshotReceiver {
    /// One encoding of one snapshot from one leader: chunks of different encodings never mix.
    struct Identity: Equatable {
        let from: NodeID
        let snapshotIndex: LogIndex
        let snapshotTerm: Term
        let encodingID: UInt64
        let totalBytes: UInt64
    }

    enum Failure: Error, CustomStringConvertible {
        case disk(String)
        case unreadable(String)

        var description: String {
            switch self {
            case .disk(let reason): "cannot stage the snapshot: \(reason)"
            case .unreadable(let reason): "the assembled snapshot is unreadable: \(reason)"
            }
        }
    }

    private let engine: RelayEngine
    private let selfID: NodeID
    private let limits: RelayStateMachine.Limits
    private let path: String
    private let transfers: SnapshotTransfers
    private let environment: NodeEnvironment
    private let logger: Logger
    private var staging: (identity: Identity, file: FileHandle, length: UInt64)?
    /// The last snapshot assembled: the leader, not yet having heard that it was installed, may
    /// ask again, and gets the answer again without a second transfer.
    private var completed: (identity: Identity, snapshot: Snapshot<RelayStateMachine>)?

    init(
        engine: RelayEngine, selfID: NodeID, limits: RelayStateMachine.Limits, dataDirectory: String, transfers: SnapshotTransfers,
        environment: NodeEnvironment, logger: Logger
    ) {
        self.engine = engine
        self.selfID = selfID
        self.limits = limits
        path = dataDirectory + "/snapshot.incoming"
        self.transfers = transfers
        self.environment = environment
        self.logger = logger
        // A transfer staged before a restart carries no identity: it starts over.
        Self.removeStagingFile(at: path, logger: logger)
    }

    /// Takes one chunk from `sender` and returns the offset wanted next.
    func receive(_ chunk: PeerWire.SnapshotChunk, from sender: NodeID) async throws -> UInt64 {
        let identity = Identity(
            from: sender, snapshotIndex: chunk.snapshotIndex, snapshotTerm: chunk.snapshotTerm, encodingID: chunk.encodingID,
            totalBytes: chunk.totalBytes)
        if let completed, completed.identity == identity {
            await hand(completed.snapshot, chunk, from: sender)
            return identity.totalBytes
        }
        if staging?.identity != identity { try startStaging(identity) }
        let length = staging!.length
        let end = chunk.offset + UInt64(chunk.bytes.count)
        if chunk.offset <= length && end > length {
            do {
                try staging!.file.seek(toOffset: length)
                try staging!.file.write(contentsOf: chunk.bytes[Int(length - chunk.offset)...])
            } catch {
                discardStaging()
                throw Failure.disk("\(error)")
            }
            staging!.length = end
            let now = environment.monotonicMilliseconds()
            transfers.updateIncoming {
                $0?.bytesDone = end
                $0?.lastProgressAtMilliseconds = now
            }
        }
        guard staging!.length == identity.totalBytes else { return staging!.length }
        let snapshot = try assemble(identity)
        completed = (identity, snapshot)
        await hand(snapshot, chunk, from: sender)
        return identity.totalBytes
    }

    private func startStaging(_ identity: Identity) throws {
        discardStaging()
        guard FileManager.default.createFile(atPath: path, contents: nil), let file = FileHandle(forWritingAtPath: path) else {
            throw Failure.disk("cannot create \(path)")
        }
        staging = (identity, file, 0)
        let now = environment.monotonicMilliseconds()
        transfers.updateIncoming {
            $0 = .init(
                node: identity.from, snapshotIndex: identity.snapshotIndex, bytesDone: 0, totalBytes: identity.totalBytes,
                startedAtMilliseconds: now, lastProgressAtMilliseconds: now)
        }
        logger.notice(
            "receiving a snapshot from the leader",
            metadata: ["leader": "\(identity.from)", "snapshot_index": "\(identity.snapshotIndex)", "bytes": "\(identity.totalBytes)"])
    }

    private func discardStaging() {
        do {
            try staging?.file.close()
        } catch {
            logger.warning("could not close the staged snapshot", metadata: ["path": "\(path)", "error": "\(error)"])
        }
        staging = nil
        Self.removeStagingFile(at: path, logger: logger)
    }

    /// No staging file is the usual case. One that cannot be removed is logged: the next
    /// transfer then fails loudly when it cannot create its own.
    private static func removeStagingFile(at path: String, logger: Logger) {
        guard FileManager.default.fileExists(atPath: path) else { return }
        do {
            try FileManager.default.removeItem(atPath: path)
        } catch {
            logger.warning("could not remove the staged snapshot", metadata: ["path": "\(path)", "error": "\(error)"])
        }
    }

    private func assemble(_ identity: Identity) throws -> Snapshot<RelayStateMachine> {
        defer { discardStaging() }
        let bytes: [UInt8]
        do {
            try staging!.file.close()
            guard let data = FileManager.default.contents(atPath: path) else { throw Failure.disk("cannot read \(path)") }
            bytes = [UInt8](data)
        }
        let snapshot: Snapshot<RelayStateMachine>
        do {
            snapshot = try MessageCodec.decodeSnapshot(bytes, limits: limits)
        } catch {
            logger.error("a snapshot from the leader could not be decoded", metadata: ["error": "\(error)"])
            throw Failure.unreadable("\(error)")
        }
        guard snapshot.index == identity.snapshotIndex, snapshot.term == identity.snapshotTerm else {
            throw Failure.unreadable("it holds index \(snapshot.index) of term \(snapshot.term), not the announced one")
        }
        let now = environment.monotonicMilliseconds()
        let started = transfers.incoming?.startedAtMilliseconds ?? now
        transfers.updateIncoming {
            $0?.finished = true
            $0?.lastProgressAtMilliseconds = now
        }
        logger.notice(
            "snapshot received; installing it",
            metadata: [
                "leader": "\(identity.from)", "snapshot_index": "\(identity.snapshotIndex)", "bytes": "\(identity.totalBytes)",
                "events": "\(snapshot.machine.queuedCount)", "duration_ms": "\(now - started)",
            ])
        return snapshot
    }

    private func hand(_ snapshot: Snapshot<RelayStateMachine>, _ chunk: PeerWire.SnapshotChunk, from sender: NodeID) async {
        await engine.receive([
            Message(from: sender, to: selfID, term: chunk.leaderTerm, body: .installSnapshot(snapshot, round: chunk.round))
        ])
    }
}
