import FluxCore
import GRDB
import GRDBSQLite

/// The statements the writer runs for every append (is an event id stored, a stream's version and name, the insert),
/// bound and stepped with the SQLite C API, for one batch.
///
/// Through `StatementArguments` and row cursors, GRDB's per-statement work (boxing each argument, building a
/// row with a column-name dictionary) cost several times SQLite's own; here each value is bound directly and
/// the statements are the connection's cached ones (`Database.cachedStatement`), looked up once per batch.
/// Every method leaves its statement reset, so GRDB may run it again afterwards.
struct SQLiteAppendStatements {
    private let db: Database
    private let isStored: Statement
    private let tail: Statement
    private let insert: Statement

    /// The statements of `db`, the writer connection, inside the batch's transaction.
    init(_ db: Database) throws {
        self.db = db
        isStored = try db.cachedStatement(sql: SQLiteEventQueries.eventIDStoredSQL)
        tail = try db.cachedStatement(sql: SQLiteEventQueries.streamTailSQL)
        insert = try db.cachedStatement(sql: SQLiteEventQueries.insertSQL)
    }

    /// Whether an event with this id is stored (a seek in the `event_id` index, no row read).
    func isStored(eventID: String) throws -> Bool {
        defer { sqlite3_reset(isStored.sqliteStatement) }
        try bind(eventID, at: 1, isStored)
        return try step(isStored)
    }

    /// The version of the last event of a stream (`-1` when it has none) and, when that event's aggregate name is
    /// not `aggregateName`, the stored name. One statement reads both: the `(aggregate_id, version)` index finds the
    /// last event as it did for the version alone, and one lookup by rowid gives its row's name (the index does not
    /// cover it), compared where it lies: a matching name is not copied.
    func stream(_ aggregateID: String, appendedAs aggregateName: String) throws -> (version: Int64, otherName: String?) {
        let statement = tail.sqliteStatement
        defer { sqlite3_reset(statement) }
        try bind(aggregateID, at: 1, tail)
        guard try step(tail) else { return (-1, nil) }
        let version = sqlite3_column_int64(statement, 0)
        // The text stays valid until the statement is reset; ask its length after it (SQLite's rule). A NOT NULL
        // column's text is nil only when SQLite is out of memory.
        guard let text = sqlite3_column_text(statement, 1) else {
            throw DatabaseError(resultCode: .SQLITE_NOMEM, message: db.lastErrorMessage, sql: tail.sql)
        }
        let stored = UnsafeBufferPointer(start: text, count: Int(sqlite3_column_bytes(statement, 1)))
        if stored.elementsEqual(aggregateName.utf8) { return (version, nil) }
        return (version, String(decoding: stored, as: UTF8.self))
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
