import Foundation
import FluxCore
import GRDB

/// The event store's SQL: statements, the feed query for a filter, and rows decoded into events.
///
/// Every statement of a hot path is a cached (prepared once per connection) statement and rows are decoded by
/// column index, straight from the SQLite statement; the writer's per-append statements are run by
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

    /// Decodes a row selected with `columns`.
    @inline(__always)
    static func event(_ row: Row) throws -> RecordedEvent {
        let payload = try row.withUnsafeData(atIndex: 7) { data in data.map { [UInt8]($0) } ?? [] }
        return RecordedEvent(
            eventID: row[1], position: Position(row[0] as Int64), aggregateID: row[2], aggregateName: row[3],
            version: row[4], eventType: row[5], recordedAtMilliseconds: row[6], payload: EventPayload(trustedJSON: payload)
        )
    }

    /// Runs a statement selecting `columns` and decodes every row.
    static func events(_ statement: Statement, _ arguments: StatementArguments, capacity: Int = 0) throws -> [RecordedEvent] {
        var result: [RecordedEvent] = []
        result.reserveCapacity(capacity)
        let rows = try Row.fetchCursor(statement, arguments: arguments)
        while let row = try rows.next() {
            result.append(try event(row))
        }
        return result
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
