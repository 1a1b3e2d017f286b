import Foundation
import FluxCore
import GRDB
import GRDBSQLite

/// The event store's SQL: statements, the feed query for a filter, and rows decoded into events.
///
/// Every statement of a hot path is a cached (prepared once per connection) statement and rows are decoded by
/// column index with the SQLite C API (`events(_:_:capacity:)`); the writer's per-append statements are run by
/// `SQLiteAppendStatements`.
enum SQLiteEventQueries {
    static let columns = "position, event_id, aggregate_id, aggregate_name, version, event_type, recorded_at, payload"

    static let insertSQL = """
        INSERT INTO events (position, event_id, aggregate_id, aggregate_name, version, event_type, recorded_at, payload)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?)
        """
    static let headSQL = "SELECT COALESCE(MAX(position), 0) FROM events"
    /// A stream's last event: its version and aggregate name (a stream has one name, see `SQLiteAppendStatements.stream`).
    static let streamTailSQL = "SELECT version, aggregate_name FROM events WHERE aggregate_id = ? ORDER BY version DESC LIMIT 1"
    static let eventIDStoredSQL = "SELECT 1 FROM events WHERE event_id = ?"
    static let eventByIDSQL = "SELECT \(columns) FROM events WHERE event_id = ?"
    static let streamSQL = "SELECT \(columns) FROM events WHERE aggregate_id = ? AND version >= ? ORDER BY version LIMIT ?"
    static let pageSQL = "SELECT \(columns) FROM events WHERE position > ? ORDER BY position LIMIT ?"
    /// The first aggregate id at or after / after a bound: one seek on the `(aggregate_id, version)` index, which
    /// holds ids in `BINARY` (UTF-8 byte) order, the listing order of every store (`StreamListing`).
    static let firstStreamFromSQL = "SELECT aggregate_id FROM events WHERE aggregate_id >= ? ORDER BY aggregate_id LIMIT 1"
    static let firstStreamAfterSQL = "SELECT aggregate_id FROM events WHERE aggregate_id > ? ORDER BY aggregate_id LIMIT 1"
    /// A stream's last event, without its payload: one seek at the end of its range of the same index.
    static let streamSummarySQL = """
        SELECT aggregate_name, version, position, recorded_at FROM events WHERE aggregate_id = ? ORDER BY version DESC LIMIT 1
        """

    /// More values than this in one filter set are matched with a plain `IN` list instead of one merged
    /// index range per value.
    static let maximumMergedValues = 64
    /// Filters with more values than this in total get a statement prepared for the call, not cached.
    static let maximumCachedFilterValues = 16

    /// Runs a statement selecting `columns` and decodes every row, stepping and reading columns with the SQLite C
    /// API: GRDB's row cursor (a `Row` per step, each value boxed) cost more than SQLite's own work for a lookup by
    /// id (`fluxgate-bench legacy`). The statement is left reset, so GRDB may run it again.
    static func events(_ statement: Statement, _ arguments: StatementArguments, capacity: Int = 0) throws -> [RecordedEvent] {
        try statement.setArguments(arguments)
        let handle = statement.sqliteStatement
        defer { sqlite3_reset(handle) }
        var result: [RecordedEvent] = []
        result.reserveCapacity(capacity)
        while true {
            switch sqlite3_step(handle) {
            case SQLITE_ROW: result.append(try event(handle, statement))
            case SQLITE_DONE: return result
            case let code: throw failure(code, statement)
            }
        }
    }

    /// Decodes the current row of a statement selecting `columns`.
    @inline(__always)
    private static func event(_ handle: SQLiteStatement, _ statement: Statement) throws -> RecordedEvent {
        // Text and blobs stay valid until the next step; their length is asked after the pointer (SQLite's rule).
        // A NOT NULL column's text is nil only when SQLite is out of memory; an empty blob's pointer is nil.
        func text(_ column: CInt) throws -> String {
            guard let bytes = sqlite3_column_text(handle, column) else { throw failure(SQLITE_NOMEM, statement) }
            return String(decoding: UnsafeBufferPointer(start: bytes, count: Int(sqlite3_column_bytes(handle, column))), as: UTF8.self)
        }
        let blob = sqlite3_column_blob(handle, 7)
        let payload = blob.map { [UInt8](UnsafeRawBufferPointer(start: $0, count: Int(sqlite3_column_bytes(handle, 7)))) } ?? []
        return RecordedEvent(
            eventID: try text(1), position: Position(sqlite3_column_int64(handle, 0)), aggregateID: try text(2),
            aggregateName: try text(3), version: sqlite3_column_int64(handle, 4), eventType: try text(5),
            recordedAtMilliseconds: sqlite3_column_int64(handle, 6), payload: EventPayload(trustedJSON: payload)
        )
    }

    private static func failure(_ code: CInt, _ statement: Statement) -> DatabaseError {
        DatabaseError(resultCode: ResultCode(rawValue: code), message: String(cString: sqlite3_errmsg(sqlite3_db_handle(statement.sqliteStatement))), sql: statement.sql)
    }

    /// The event stored with `id`, if any.
    static func event(id: String, _ db: Database) throws -> RecordedEvent? {
        try events(db.cachedStatement(sql: eventByIDSQL), [id]).first
    }

    /// The position of the last event, `0` when the store is empty.
    static func head(_ db: Database) throws -> Int64 {
        try Int64.fetchOne(db.cachedStatement(sql: headSQL)) ?? 0
    }

    /// A page of the feed: events after `position` matching `filter`, in position order.
    ///
    /// A set with several values is matched as a merge (`UNION ALL … ORDER BY position`) of one index range per
    /// value, each already in position order, so a page costs `limit` rows whatever the store's size; a plain
    /// `IN` list would make SQLite sort every matching row after `position` to return the first `limit`.
    static func page(after position: Position, limit: Int, filter: EventFilter, _ db: Database) throws -> [RecordedEvent] {
        let after = max(position.rawValue, 0)
        if filter.isEmpty {
            return try events(db.cachedStatement(sql: pageSQL), [after, limit], capacity: min(limit, 1024))
        }
        let sets: [(column: String, values: [String])] = [
            ("event_type", filter.eventTypes.sorted()),
            ("aggregate_name", filter.aggregateNames.sorted()),
            ("aggregate_id", filter.aggregateIDs.sorted()),
        ].filter { !$0.values.isEmpty }
        let driving = sets[0]
        let others = sets.dropFirst()
        let arms: [[String]] = driving.values.count <= maximumMergedValues ? driving.values.map { [$0] } : [driving.values]

        var sql = ""
        var arguments: [any DatabaseValueConvertible] = []
        for (index, armValues) in arms.enumerated() {
            if index > 0 { sql += " UNION ALL " }
            sql += "SELECT \(columns) FROM events WHERE position > ? AND " + condition(driving.column, count: armValues.count)
            arguments.append(after)
            arguments += armValues as [any DatabaseValueConvertible]
            for other in others {
                sql += " AND " + condition(other.column, count: other.values.count)
                arguments += other.values as [any DatabaseValueConvertible]
            }
        }
        sql += " ORDER BY position LIMIT ?"
        arguments.append(limit)
        let valueCount = sets.reduce(0) { $0 + $1.values.count }
        let statement = valueCount <= maximumCachedFilterValues ? try db.cachedStatement(sql: sql) : try db.makeStatement(sql: sql)
        return try events(statement, StatementArguments(arguments), capacity: min(limit, 1024))
    }

    private static func condition(_ column: String, count: Int) -> String {
        count == 1 ? "\(column) = ?" : "\(column) IN (" + Array(repeating: "?", count: count).joined(separator: ", ") + ")"
    }

    /// A page of the stream listing (`EventReader.streams`): seeks from one aggregate id to the next on the index,
    /// so a page costs two seeks per stream passed, never a scan of the streams' events.
    static func streams(
        after cursor: String?, prefix: String, aggregateNames: Set<String>, limit: Int, _ db: Database
    ) throws -> [StreamSummary] {
        let start = StreamListing.start(after: cursor, prefix: prefix)
        let first = try db.cachedStatement(sql: firstStreamFromSQL)
        let next = try db.cachedStatement(sql: firstStreamAfterSQL)
        let summary = try db.cachedStatement(sql: streamSummarySQL)
        var result: [StreamSummary] = []
        var bound = start.bound
        var statement = start.inclusive ? first : next
        while result.count < limit {
            guard let id = try String.fetchOne(statement, arguments: [bound]), StreamListing.hasPrefix(id, prefix) else { break }
            bound = id
            statement = next
            guard let row = try Row.fetchOne(summary, arguments: [id]) else { continue }
            let name: String = row[0]
            if !aggregateNames.isEmpty && !aggregateNames.contains(name) { continue }
            result.append(
                StreamSummary(
                    aggregateID: id, aggregateName: name, version: row[1], lastPosition: Position(row[2] as Int64),
                    lastRecordedAtMilliseconds: row[3]
                )
            )
        }
        return result
    }

    /// One stream's events from `fromVersion` on.
    static func stream(_ aggregateID: String, fromVersion: Int64, limit: Int, _ db: Database) throws -> [RecordedEvent] {
        try events(db.cachedStatement(sql: streamSQL), [aggregateID, max(fromVersion, 0), limit], capacity: min(limit, 1024))
    }
}
