import CSQLite

/// An SQLite failure, with SQLite's own message and what the store was doing.
public struct StoreError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ what: String, code: Int32, message: String?) {
        description = "\(what): \(message ?? String(cString: sqlite3_errstr(code))) (SQLite code \(code))"
    }
    init(_ description: String) { self.description = description }
}

/// One SQLite connection. Not thread-safe: `RelayStore` confines it to one serial queue.
final class SQLiteConnection {
    private var handle: OpaquePointer?

    init(path: String) throws(StoreError) {
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
        let code = sqlite3_open_v2(path, &handle, flags, nil)
        guard code == SQLITE_OK else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) }
            sqlite3_close(handle)
            throw StoreError("cannot open \(path)", code: code, message: message)
        }
        sqlite3_extended_result_codes(handle, 1)
    }

    deinit { sqlite3_close_v2(handle) }

    func execute(_ sql: String) throws(StoreError) {
        var errorMessage: UnsafeMutablePointer<CChar>?
        let code = sqlite3_exec(handle, sql, nil, nil, &errorMessage)
        defer { sqlite3_free(errorMessage) }
        guard code == SQLITE_OK else {
            throw StoreError("'\(sql.prefix(60))'", code: code, message: errorMessage.map { String(cString: $0) })
        }
    }

    func prepare(_ sql: String) throws(StoreError) -> Statement {
        var statement: OpaquePointer?
        let code = sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil)
        guard code == SQLITE_OK, let statement else { throw error("prepare '\(sql.prefix(60))'", code: code) }
        return Statement(statement, connection: self)
    }

    /// A single-value query such as `PRAGMA synchronous`.
    func scalar(_ sql: String) throws(StoreError) -> Int64? {
        let statement = try prepare(sql)
        return try statement.step() ? statement.int64(0) : nil
    }

    /// Rows the last statement changed.
    var changes: Int { Int(sqlite3_changes(handle)) }

    func error(_ what: String, code: Int32) -> StoreError {
        StoreError(what, code: code, message: String(cString: sqlite3_errmsg(handle)))
    }
}

/// A prepared statement, reused across transactions.
final class Statement {
    private let statement: OpaquePointer
    private unowned let connection: SQLiteConnection
    /// SQLite copies bound bytes at once (SQLITE_TRANSIENT), so Swift buffers may go away.
    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    init(_ statement: OpaquePointer, connection: SQLiteConnection) {
        self.statement = statement
        self.connection = connection
    }

    deinit { sqlite3_finalize(statement) }

    /// Binds parameters 1…n in order; nil binds NULL.
    @discardableResult
    func bind(_ values: [SQLiteValue?]) -> Statement {
        sqlite3_reset(statement)
        sqlite3_clear_bindings(statement)
        for (offset, value) in values.enumerated() {
            let index = Int32(offset + 1)
            switch value {
            case nil: sqlite3_bind_null(statement, index)
            case .integer(let integer): sqlite3_bind_int64(statement, index, integer)
            case .text(let text): sqlite3_bind_text(statement, index, text, -1, Self.transient)
            case .blob(let bytes):
                bytes.withUnsafeBytes { sqlite3_bind_blob(statement, index, $0.baseAddress, Int32($0.count), Self.transient) }
            }
        }
        return self
    }

    /// Runs a statement that returns no rows.
    func run(_ values: [SQLiteValue?] = []) throws(StoreError) {
        bind(values)
        while try step() {}
    }

    /// Advances to the next row; false when done.
    func step() throws(StoreError) -> Bool {
        let code = sqlite3_step(statement)
        switch code {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default: throw connection.error("step", code: code)
        }
    }

    func int64(_ column: Int32) -> Int64 { sqlite3_column_int64(statement, column) }

    func optionalInt64(_ column: Int32) -> Int64? {
        sqlite3_column_type(statement, column) == SQLITE_NULL ? nil : int64(column)
    }

    func text(_ column: Int32) -> String? {
        guard let pointer = sqlite3_column_text(statement, column) else { return nil }
        return String(cString: pointer)
    }

    func blob(_ column: Int32) -> [UInt8] {
        let count = Int(sqlite3_column_bytes(statement, column))
        guard count > 0, let pointer = sqlite3_column_blob(statement, column) else { return [] }
        return Array(UnsafeRawBufferPointer(start: pointer, count: count))
    }
}

enum SQLiteValue {
    case integer(Int64)
    case text(String)
    case blob([UInt8])
}
