import CSQLite
import Dispatch
import Foundation
import RelayCore

/// The node's durable state in one SQLite file: queued events, the dedup table and attempt
/// history. Writes run in WAL mode with `synchronous=FULL`, so a committed transaction survives
/// `kill -9` and power loss. All access runs on one serial queue (SQLite connections are not
/// thread-safe, and a blocking fsync must not hold a Swift concurrency thread), which is why the
/// class can be `Sendable`.
public final class RelayStore: @unchecked Sendable {
    public typealias Contents = RelayStateMachine.Contents

    public static let fileName = "pdrelay.sqlite"
    /// Attempts kept per event for `pdrelay queue show`; older ones are dropped.
    public static let maxAttemptsKeptPerEvent = 50
    /// 2 added the replicated log (`raft_log`); a version-1 store opens as a log that starts after it.
    /// 3 added open delivery intents (`intents`); an older store has none open.
    /// 4 added incident folders (`incidents`), maintenance windows (`windows`) and the events
    /// they hold (`held`), heartbeats (`heartbeats`) and pending digests (`digests`); an older
    /// store starts with none.
    /// 5 added failover rehearsals (`drills`).
    static let schemaVersion: Int64 = 5

    public let path: String
    private let queue = DispatchQueue(label: "pdrelay.store")
    let connection: SQLiteConnection
    let statements: Statements
    /// Log entries up to here are compacted away but may still be on disk: each transaction
    /// drops a bounded share of them (`compactStep`). Only touched on the store queue.
    var compactionTarget: Int64 = 0
    /// Compacted entries dropped per transaction: dropping a thousand entries of 500 KB in one
    /// transaction took over a second, and the leader's heartbeats stop behind a write that long.
    static let maxCompactedEntriesPerWrite: Int64 = 32

    /// Opens (creating if needed) the store in `directory`, which is created with mode 0700
    /// because queued events carry routing keys.
    public init(directory: String) throws {
        try FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        path = (directory as NSString).appendingPathComponent(Self.fileName)
        connection = try SQLiteConnection(path: path)
        try connection.execute("PRAGMA journal_mode=WAL")
        // FULL makes every commit survive power loss in WAL mode, which a 202 promises.
        try connection.execute("PRAGMA synchronous=FULL")
        try connection.execute("PRAGMA busy_timeout=5000")
        try Self.migrate(connection)
        statements = try Statements(connection)
    }

    /// The `PRAGMA synchronous` in force: 2 is FULL.
    public func synchronousMode() async throws -> Int64? {
        try await run { try $0.connection.scalar("PRAGMA synchronous") }
    }

    public func journalMode() async throws -> String? {
        try await run { store in
            let statement = try store.connection.prepare("PRAGMA journal_mode")
            return try statement.step() ? statement.text(0) : nil
        }
    }

    public func load() async throws -> Contents {
        try await run { store in
            let s = store.statements
            var events: [QueuedEvent] = []
            s.selectEvents.bind([])
            while try s.selectEvents.step() { events.append(try Self.event(from: s.selectEvents)) }
            var entries: [DedupEntry] = []
            s.selectDedup.bind([])
            while try s.selectDedup.step() { entries.append(try Self.dedupEntry(from: s.selectDedup)) }
            var intents: [DeliveryIntent] = []
            s.selectIntents.bind([])
            while try s.selectIntents.step() { intents.append(try Self.intent(from: s.selectIntents)) }
            let folders: [IncidentFolder] = try Self.blobs(s.selectFolders)
            let windows: [MaintenanceWindow] = try Self.blobs(s.selectWindows)
            let held: [HeldEvent] = try Self.blobs(s.selectHeld)
            let heartbeats: [Heartbeat] = try Self.blobs(s.selectHeartbeats)
            let digests: [Digest] = try Self.blobs(s.selectDigests)
            let drills: [DrillRecord] = try Self.blobs(s.selectDrills)
            let next = try store.connection.scalar("SELECT value FROM meta WHERE name = 'next_event_number'") ?? 1
            let nextWindow = try store.connection.scalar("SELECT value FROM meta WHERE name = 'next_window_id'") ?? 1
            return Contents(
                events: events, dedupEntries: entries, nextEventNumber: UInt64(next), intents: intents, folders: folders, windows: windows,
                held: held, nextWindowID: UInt64(nextWindow), heartbeats: heartbeats, digests: digests, drills: drills)
        }
    }

    /// Writes a batch of mutations in one transaction and syncs it to disk before returning.
    public func commit(_ mutations: [StoreMutation]) async throws {
        guard !mutations.isEmpty else { return }
        try await run { store in try store.write(mutations) }
    }

    public func attempts(eventNumber: UInt64) async throws -> [AttemptRecord] {
        try await run { store in
            let select = store.statements.selectAttempts
            select.bind([.integer(Int64(eventNumber))])
            var records: [AttemptRecord] = []
            while try select.step() {
                records.append(
                    AttemptRecord(
                        outcome: AttemptRecord.Outcome(rawValue: select.text(3) ?? "") ?? .retry,
                        atMilliseconds: select.int64(0), durationMilliseconds: select.int64(1),
                        statusCode: select.optionalInt64(2).map(Int.init), detail: select.text(4) ?? ""))
            }
            return records
        }
    }

    /// A real write, synced: what `/readyz` means by "the store is writable".
    public func probeWritable(atMilliseconds: Int64) async throws {
        try await run { store in
            try store.transaction {
                try store.statements.putMeta.run([.text("readiness_probe_at_ms"), .integer(atMilliseconds)])
            }
        }
    }

    // MARK: on the store queue

    func run<T: Sendable>(_ body: @escaping @Sendable (RelayStore) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try body(self) }) }
        }
    }

    func transaction(_ body: () throws -> Void) throws {
        try statements.begin.run()
        do {
            try body()
            try statements.commit.run()
        } catch {
            do {
                try statements.rollback.run()
            } catch let rollbackError {
                throw StoreError("\(error); the rollback failed too: \(rollbackError)")
            }
            throw error
        }
    }

    func write(_ mutations: [StoreMutation]) throws {
        try transaction {
            for mutation in mutations { try apply(mutation) }
        }
    }

    /// One mutation, inside the caller's transaction.
    func apply(_ mutation: StoreMutation) throws {
        let s = statements
        switch mutation {
        case .putEvent(let event):
            try s.putEvent.run([
                .integer(Int64(event.number)), .text(event.kind.rawValue), .text(event.action.rawValue),
                .text(event.key.routingKey), .text(event.key.dedupKey), .blob(event.body), .blob(event.fingerprint),
                .integer(event.receivedAtMilliseconds), .text(event.state.rawValue), .integer(Int64(event.attempts)),
                event.lastError.map(SQLiteValue.text),
            ])
        case .deleteEvent(let number):
            try s.deleteEvent.run([.integer(Int64(number))])
            try s.deleteAttempts.run([.integer(Int64(number))])
        case .putDedup(let entry):
            try s.putDedup.run([
                .text(entry.key.routingKey), .text(entry.key.dedupKey), .integer(Int64(entry.lastNumber)),
                .text(entry.lastAction.rawValue), .blob(entry.lastFingerprint), .integer(entry.lastAcceptedAtMilliseconds),
                .integer(entry.keyWasAssigned ? 1 : 0),
            ])
        case .deleteDedup(let key):
            try s.deleteDedup.run([.text(key.routingKey), .text(key.dedupKey)])
        case .appendAttempt(let number, let attempt):
            try s.appendAttempt.run([
                .integer(Int64(number)), .integer(attempt.atMilliseconds), .integer(attempt.durationMilliseconds),
                attempt.statusCode.map { .integer(Int64($0)) }, .text(attempt.outcome.rawValue), .text(attempt.detail),
            ])
            try s.trimAttempts.run([.integer(Int64(number)), .integer(Int64(Self.maxAttemptsKeptPerEvent))])
        case .setNextEventNumber(let next):
            try s.putMeta.run([.text("next_event_number"), .integer(Int64(next))])
        case .putIntent(let intent):
            try s.putIntent.run([
                .text(intent.key.routingKey), .text(intent.key.dedupKey), .integer(Int64(intent.eventNumber)),
                .integer(Int64(intent.term)), .integer(Int64(intent.attempt)),
            ])
        case .deleteIntent(let key):
            try s.deleteIntent.run([.text(key.routingKey), .text(key.dedupKey)])
        case .putFolder(let folder):
            try s.putFolder.run([.text(folder.key.routingKey), .text(folder.key.dedupKey), .blob(folder.encoded)])
        case .deleteFolder(let key):
            try s.deleteFolder.run([.text(key.routingKey), .text(key.dedupKey)])
        case .putWindow(let window):
            try s.putWindow.run([.integer(Int64(window.id)), .blob(window.encoded)])
        case .deleteWindow(let id):
            try s.deleteWindow.run([.integer(Int64(id))])
        case .setNextWindowID(let next):
            try s.putMeta.run([.text("next_window_id"), .integer(Int64(next))])
        case .putHeld(let event):
            try s.putHeld.run([.integer(Int64(event.windowID)), .integer(Int64(event.sequence)), .blob(event.encoded)])
        case .deleteHeld(let windowID, let sequence):
            try s.deleteHeld.run([.integer(Int64(windowID)), .integer(Int64(sequence))])
        case .putHeartbeat(let heartbeat):
            try s.putHeartbeat.run([.text(heartbeat.name), .blob(heartbeat.encoded)])
        case .deleteHeartbeat(let name):
            try s.deleteHeartbeat.run([.text(name)])
        case .putDigest(let digest):
            try s.putDigest.run([.text(digest.routingKey), .blob(digest.encoded)])
        case .deleteDigest(let routingKey):
            try s.deleteDigest.run([.text(routingKey)])
        case .putDrill(let drill):
            try s.putDrill.run([.integer(Int64(drill.id)), .blob(drill.encoded)])
        case .deleteDrill(let id):
            try s.deleteDrill.run([.integer(Int64(id))])
        }
    }

    /// Every row of a one-column select of blobs, decoded.
    private static func blobs<T: BinaryBlob>(_ select: Statement) throws -> [T] {
        select.bind([])
        var values: [T] = []
        while try select.step() {
            do {
                values.append(try T(encoded: select.blob(0)))
            } catch {
                throw StoreError("\(T.blobName) is unreadable: \(error)")
            }
        }
        return values
    }

    private static func event(from row: Statement) throws -> QueuedEvent {
        guard let kind = row.text(1).flatMap(EventKind.init), let action = row.text(2).flatMap(EventAction.init),
            let routingKey = row.text(3), let dedupKey = row.text(4), let state = row.text(8).flatMap(QueuedEvent.State.init)
        else { throw StoreError("event \(row.int64(0)) has an unreadable row") }
        return QueuedEvent(
            number: UInt64(row.int64(0)), kind: kind, action: action, key: OrderingKey(routingKey: routingKey, dedupKey: dedupKey),
            body: row.blob(5), fingerprint: row.blob(6), receivedAtMilliseconds: row.int64(7), state: state,
            attempts: Int(row.int64(9)), lastError: row.text(10))
    }

    private static func intent(from row: Statement) throws -> DeliveryIntent {
        guard let routingKey = row.text(0), let dedupKey = row.text(1), row.int64(4) > 0 else {
            throw StoreError("an intent row is unreadable")
        }
        return DeliveryIntent(
            key: OrderingKey(routingKey: routingKey, dedupKey: dedupKey), eventNumber: UInt64(row.int64(2)), term: UInt64(row.int64(3)),
            attempt: Int(row.int64(4)))
    }

    private static func dedupEntry(from row: Statement) throws -> DedupEntry {
        guard let routingKey = row.text(0), let dedupKey = row.text(1), let action = row.text(3).flatMap(EventAction.init) else {
            throw StoreError("a dedup row is unreadable")
        }
        return DedupEntry(
            key: OrderingKey(routingKey: routingKey, dedupKey: dedupKey), lastNumber: UInt64(row.int64(2)), lastAction: action,
            lastFingerprint: row.blob(4), lastAcceptedAtMilliseconds: row.int64(5), keyWasAssigned: row.int64(6) != 0)
    }

    private static func migrate(_ connection: SQLiteConnection) throws {
        try connection.execute(
            """
            CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS events (
                number INTEGER PRIMARY KEY, kind TEXT NOT NULL, action TEXT NOT NULL,
                routing_key TEXT NOT NULL, dedup_key TEXT NOT NULL, body BLOB NOT NULL, fingerprint BLOB NOT NULL,
                received_at_ms INTEGER NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL, last_error TEXT);
            CREATE TABLE IF NOT EXISTS dedup (
                routing_key TEXT NOT NULL, dedup_key TEXT NOT NULL, last_number INTEGER NOT NULL, last_action TEXT NOT NULL,
                last_fingerprint BLOB NOT NULL, last_accepted_at_ms INTEGER NOT NULL, key_was_assigned INTEGER NOT NULL,
                PRIMARY KEY (routing_key, dedup_key)) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS attempts (
                event_number INTEGER NOT NULL, at_ms INTEGER NOT NULL, duration_ms INTEGER NOT NULL,
                status_code INTEGER, outcome TEXT NOT NULL, detail TEXT NOT NULL);
            CREATE INDEX IF NOT EXISTS attempts_by_event ON attempts (event_number);
            CREATE TABLE IF NOT EXISTS raft_log (idx INTEGER PRIMARY KEY, term INTEGER NOT NULL, command BLOB);
            CREATE TABLE IF NOT EXISTS intents (
                routing_key TEXT NOT NULL, dedup_key TEXT NOT NULL, event_number INTEGER NOT NULL, term INTEGER NOT NULL,
                attempt INTEGER NOT NULL, PRIMARY KEY (routing_key, dedup_key)) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS incidents (
                routing_key TEXT NOT NULL, dedup_key TEXT NOT NULL, folder BLOB NOT NULL,
                PRIMARY KEY (routing_key, dedup_key)) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS windows (id INTEGER PRIMARY KEY, window BLOB NOT NULL);
            CREATE TABLE IF NOT EXISTS held (
                window_id INTEGER NOT NULL, sequence INTEGER NOT NULL, event BLOB NOT NULL,
                PRIMARY KEY (window_id, sequence)) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS heartbeats (name TEXT PRIMARY KEY, heartbeat BLOB NOT NULL) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS digests (routing_key TEXT PRIMARY KEY, digest BLOB NOT NULL) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS drills (id INTEGER PRIMARY KEY, drill BLOB NOT NULL);
            INSERT OR IGNORE INTO meta (name, value) VALUES ('schema_version', \(schemaVersion));
            UPDATE meta SET value = \(schemaVersion) WHERE name = 'schema_version' AND value IN (1, 2, 3, 4);
            """)
        let version = try connection.scalar("SELECT value FROM meta WHERE name = 'schema_version'") ?? 0
        guard version == schemaVersion else {
            throw StoreError("the store has schema version \(version); this pdrelay reads version \(schemaVersion)")
        }
    }
}

/// Statements prepared once and reused for every transaction.
struct Statements {
    let begin, commit, rollback: Statement
    let putEvent, deleteEvent, selectEvents: Statement
    let putDedup, deleteDedup, selectDedup: Statement
    let putIntent, deleteIntent, selectIntents: Statement
    let putFolder, deleteFolder, selectFolders: Statement
    let putWindow, deleteWindow, selectWindows, putHeld, deleteHeld, selectHeld: Statement
    let putHeartbeat, deleteHeartbeat, selectHeartbeats, putDigest, deleteDigest, selectDigests: Statement
    let putDrill, deleteDrill, selectDrills: Statement
    let appendAttempt, trimAttempts, deleteAttempts, selectAttempts: Statement
    let putMeta: Statement
    let putEntry, truncateLog, compactLog, compactStep, termAt, selectEntries: Statement

    init(_ c: SQLiteConnection) throws {
        begin = try c.prepare("BEGIN IMMEDIATE")
        commit = try c.prepare("COMMIT")
        rollback = try c.prepare("ROLLBACK")
        putEvent = try c.prepare("INSERT OR REPLACE INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
        deleteEvent = try c.prepare("DELETE FROM events WHERE number = ?")
        selectEvents = try c.prepare("SELECT * FROM events ORDER BY number")
        putDedup = try c.prepare("INSERT OR REPLACE INTO dedup VALUES (?, ?, ?, ?, ?, ?, ?)")
        deleteDedup = try c.prepare("DELETE FROM dedup WHERE routing_key = ? AND dedup_key = ?")
        selectDedup = try c.prepare("SELECT * FROM dedup")
        putIntent = try c.prepare("INSERT OR REPLACE INTO intents VALUES (?, ?, ?, ?, ?)")
        deleteIntent = try c.prepare("DELETE FROM intents WHERE routing_key = ? AND dedup_key = ?")
        selectIntents = try c.prepare("SELECT * FROM intents")
        putFolder = try c.prepare("INSERT OR REPLACE INTO incidents VALUES (?, ?, ?)")
        deleteFolder = try c.prepare("DELETE FROM incidents WHERE routing_key = ? AND dedup_key = ?")
        selectFolders = try c.prepare("SELECT folder FROM incidents")
        putWindow = try c.prepare("INSERT OR REPLACE INTO windows VALUES (?, ?)")
        deleteWindow = try c.prepare("DELETE FROM windows WHERE id = ?")
        selectWindows = try c.prepare("SELECT window FROM windows")
        putHeld = try c.prepare("INSERT OR REPLACE INTO held VALUES (?, ?, ?)")
        deleteHeld = try c.prepare("DELETE FROM held WHERE window_id = ? AND sequence = ?")
        selectHeld = try c.prepare("SELECT event FROM held")
        putHeartbeat = try c.prepare("INSERT OR REPLACE INTO heartbeats VALUES (?, ?)")
        deleteHeartbeat = try c.prepare("DELETE FROM heartbeats WHERE name = ?")
        selectHeartbeats = try c.prepare("SELECT heartbeat FROM heartbeats")
        putDigest = try c.prepare("INSERT OR REPLACE INTO digests VALUES (?, ?)")
        deleteDigest = try c.prepare("DELETE FROM digests WHERE routing_key = ?")
        selectDigests = try c.prepare("SELECT digest FROM digests")
        putDrill = try c.prepare("INSERT OR REPLACE INTO drills VALUES (?, ?)")
        deleteDrill = try c.prepare("DELETE FROM drills WHERE id = ?")
        selectDrills = try c.prepare("SELECT drill FROM drills ORDER BY id")
        appendAttempt = try c.prepare("INSERT INTO attempts VALUES (?, ?, ?, ?, ?, ?)")
        trimAttempts = try c.prepare(
            "DELETE FROM attempts WHERE rowid IN (SELECT rowid FROM attempts WHERE event_number = ?1 ORDER BY rowid DESC LIMIT -1 OFFSET ?2)"
        )
        deleteAttempts = try c.prepare("DELETE FROM attempts WHERE event_number = ?")
        selectAttempts = try c.prepare(
            "SELECT at_ms, duration_ms, status_code, outcome, detail FROM attempts WHERE event_number = ? ORDER BY rowid")
        putMeta = try c.prepare("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)")
        putEntry = try c.prepare("INSERT OR REPLACE INTO raft_log (idx, term, command) VALUES (?, ?, ?)")
        truncateLog = try c.prepare("DELETE FROM raft_log WHERE idx > ?")
        compactLog = try c.prepare("DELETE FROM raft_log WHERE idx <= ?")
        compactStep = try c.prepare("DELETE FROM raft_log WHERE idx IN (SELECT idx FROM raft_log WHERE idx <= ? ORDER BY idx LIMIT ?)")
        termAt = try c.prepare("SELECT term FROM raft_log WHERE idx = ?")
        selectEntries = try c.prepare("SELECT idx, term, command FROM raft_log WHERE idx > ? ORDER BY idx")
    }
}
