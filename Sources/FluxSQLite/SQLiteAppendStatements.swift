import FluxCore
import GRDB
import GRDBSQLite

/// The statements the writer runs for every append (is an event id stored, a stream's version, the insert),
/// bound and stepped with the SQLite C API, for one batch.
///
/// Through `StatementArguments` and row cursors, GRDB's per-statement work (boxing each argument, building a
/// row with a column-name dictionary) cost several times SQLite's own; here each value is bound directly and
/// the statements are the connection's cached ones (`Database.cachedStatement`), looked up once per batch.
/// Every method leaves its statement reset, so GRDB may run it again afterwards.
struct SQLiteAppendStatements {
    private let db: Database
    private let isStored: Statement
    private let version: Statement
    private let insert: Statement

    /// The statements of `db`, the writer connection, inside the batch's transaction.
    init(_ db: Database) throws {
        self.db = db
        isStored = try db.cachedStatement(sql: SQLiteEventQueries.eventIDStoredSQL)
        version = try db.cachedStatement(sql: SQLiteEventQueries.streamVersionSQL)
        insert = try db.cachedStatement(sql: SQLiteEventQueries.insertSQL)
    }

    /// Whether an event with this id is stored (a seek in the `event_id` index, no row read).
    func isStored(eventID: String) throws -> Bool {
        defer { sqlite3_reset(isStored.sqliteStatement) }
        try bind(eventID, at: 1, isStored)
        return try step(isStored)
    }

    /// The version of the last event of a stream, `-1` when it has none.
    func currentVersion(of aggregateID: String) throws -> Int64 {
        defer { sqlite3_reset(version.sqliteStatement) }
        try bind(aggregateID, at: 1, version)
        return try step(version) ? sqlite3_column_int64(version.sqliteStatement, 0) : -1
    }

    /// Inserts one event. A constraint violation throws a `DatabaseError` and, as for any failed statement,
    /// SQLite undoes the statement and keeps the transaction.
    func insert(
        position: Int64, event: NewEvent, aggregateID: String, aggregateName: String, version: Int64, recordedAt: Int64
    ) throws {
        let statement = insert.sqliteStatement
        defer { sqlite3_reset(statement) }
        try check(sqlite3_bind_int64(statement, 1, position), insert)
        try bind(event.eventID, at: 2, insert)
        try bind(aggregateID, at: 3, insert)
        try bind(aggregateName, at: 4, insert)
        try check(sqlite3_bind_int64(statement, 5, version), insert)
        try bind(event.eventType, at: 6, insert)
        try check(sqlite3_bind_int64(statement, 7, recordedAt), insert)
        try check(
            event.payload.bytes.withUnsafeBytes { payload in
                // An empty buffer may have no address, which would bind NULL: bind an empty blob instead.
                guard let address = payload.baseAddress, !payload.isEmpty else { return sqlite3_bind_zeroblob(statement, 8, 0) }
                return sqlite3_bind_blob(statement, 8, address, CInt(payload.count), transient)
            },
            insert
        )
        _ = try step(insert)
    }

    /// Binds a string (SQLite copies it), interior NUL bytes included.
    private func bind(_ text: String, at index: CInt, _ statement: Statement) throws {
        let length = CInt(text.utf8.count)
        try check(text.withCString { sqlite3_bind_text(statement.sqliteStatement, index, $0, length, transient) }, statement)
    }

    /// Runs one step: `true` when it produced a row, `false` when done.
    private func step(_ statement: Statement) throws -> Bool {
        switch sqlite3_step(statement.sqliteStatement) {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        case let code: throw DatabaseError(resultCode: ResultCode(rawValue: code), message: db.lastErrorMessage, sql: statement.sql)
        }
    }

    private func check(_ code: CInt, _ statement: Statement) throws {
        guard code == SQLITE_OK else {
            throw DatabaseError(resultCode: ResultCode(rawValue: code), message: db.lastErrorMessage, sql: statement.sql)
        }
    }
}

/// `SQLITE_TRANSIENT`: SQLite copies a bound value before the bind call returns (the C macro is not imported).
private let transient = unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)
