import FluxCore
import Logging
import NIOCore
import PostgresNIO

/// The event store's SQL and the decoding of its rows into events.
enum PostgresEventQueries {
    static let columns = "position, event_id, aggregate_id, aggregate_name, version, event_type, recorded_at, payload"

    /// Decodes every row of a query selecting `columns`.
    static func events(_ rows: PostgresRowSequence, capacity: Int = 0) async throws -> [RecordedEvent] {
        var result: [RecordedEvent] = []
        result.reserveCapacity(capacity)
        for try await (position, eventID, aggregateID, aggregateName, version, eventType, recordedAt, payload) in rows.decode(
            (Int64, String, String, String, Int64, String, Int64, ByteBuffer).self
        ) {
            result.append(
                RecordedEvent(
                    eventID: eventID, position: Position(position), aggregateID: aggregateID, aggregateName: aggregateName,
                    version: version, eventType: eventType, recordedAtMilliseconds: recordedAt,
                    payload: EventPayload(trustedJSON: Array(payload.readableBytesView))
                )
            )
        }
        return result
    }

    /// The committed head: the position of the last event, `0` when the store is empty.
    static func head(_ connection: PostgresConnection, logger: Logger) async throws -> Int64 {
        for try await position in try await connection.query("SELECT position FROM fluxgate_head WHERE id = 1", logger: logger)
            .decode(Int64.self)
        {
            return position
        }
        throw StoreError(.corrupted, "fluxgate_head has no row; the database was changed by hand: restore it from a backup")
    }

    /// The stored events with these ids (any order).
    static func events(ids: [String], _ connection: PostgresConnection, logger: Logger) async throws -> [RecordedEvent] {
        try await events(
            connection.query("SELECT \(unescaped: columns) FROM fluxgate_events WHERE event_id = ANY(\(ids))", logger: logger)
        )
    }

    /// The aggregate name of a stream (that of its last event), `nil` when it has no events.
    static func aggregateName(of aggregateID: String, _ connection: PostgresConnection, logger: Logger) async throws -> String? {
        let rows = try await connection.query(
            "SELECT aggregate_name FROM fluxgate_events WHERE aggregate_id = \(aggregateID) ORDER BY version DESC LIMIT 1", logger: logger
        )
        for try await name in rows.decode(String.self) { return name }
        return nil
    }

    /// A page of the feed: events after `position` matching `filter`, in position order.
    static func page(after position: Position, limit: Int, filter: EventFilter) -> PostgresQuery {
        var sql = "SELECT \(columns) FROM fluxgate_events WHERE position > $1"
        var bindings = PostgresBindings(capacity: 5)
        bindings.append(max(position.rawValue, 0))
        for (column, values) in [
            ("event_type", filter.eventTypes), ("aggregate_name", filter.aggregateNames), ("aggregate_id", filter.aggregateIDs),
        ] where !values.isEmpty {
            bindings.append(values.sorted())
            sql += " AND \(column) = ANY($\(bindings.count))"
        }
        bindings.append(Int64(limit))
        sql += " ORDER BY position LIMIT $\(bindings.count)"
        return PostgresQuery(unsafeSQL: sql, binds: bindings)
    }

    /// A page of the stream listing (`EventReader.streams`), in the byte order of aggregate ids.
    ///
    /// A recursive query seeks from one aggregate id to the next on the `"C"`-collated index (a loose index scan),
    /// and stops at the first id without the prefix (in byte order the ids with a prefix are contiguous); each
    /// stream's last event is one more seek at the end of its range. The outer `LIMIT` stops the recursion: a page
    /// costs about two seeks per stream passed, never a scan of the streams' events.
    static func streams(after cursor: String?, prefix: String, aggregateNames: Set<String>, limit: Int) -> PostgresQuery {
        let start = StreamListing.start(after: cursor, prefix: prefix)
        var bindings = PostgresBindings(capacity: 4)
        bindings.append(start.bound)
        bindings.append(prefix)
        var sql = """
            WITH RECURSIVE ids(id) AS (
                SELECT (SELECT e.aggregate_id COLLATE "C" FROM fluxgate_events e
                        WHERE e.aggregate_id COLLATE "C" \(start.inclusive ? ">=" : ">") ($1 COLLATE "C")
                        ORDER BY e.aggregate_id COLLATE "C" LIMIT 1)
                UNION ALL
                SELECT (SELECT e.aggregate_id COLLATE "C" FROM fluxgate_events e
                        WHERE e.aggregate_id COLLATE "C" > ids.id
                        ORDER BY e.aggregate_id COLLATE "C" LIMIT 1)
                FROM ids WHERE ids.id IS NOT NULL AND starts_with(ids.id, $2 COLLATE "C")
            )
            SELECT ids.id, tail.aggregate_name, tail.version, tail.position, tail.recorded_at
            FROM ids CROSS JOIN LATERAL (
                SELECT e.aggregate_name, e.version, e.position, e.recorded_at FROM fluxgate_events e
                WHERE e.aggregate_id COLLATE "C" = ids.id ORDER BY e.version DESC LIMIT 1
            ) tail
            WHERE ids.id IS NOT NULL AND starts_with(ids.id, $2 COLLATE "C")
            """
        if !aggregateNames.isEmpty {
            bindings.append(aggregateNames.sorted())
            sql += " AND tail.aggregate_name = ANY($\(bindings.count))"
        }
        bindings.append(Int64(limit))
        sql += " LIMIT $\(bindings.count)"
        return PostgresQuery(unsafeSQL: sql, binds: bindings)
    }

    /// Decodes the rows of `streams(after:prefix:aggregateNames:limit:)`.
    static func streamSummaries(_ rows: PostgresRowSequence) async throws -> [StreamSummary] {
        var result: [StreamSummary] = []
        for try await (id, name, version, position, recordedAt) in rows.decode((String, String, Int64, Int64, Int64).self) {
            result.append(
                StreamSummary(
                    aggregateID: id, aggregateName: name, version: version, lastPosition: Position(position),
                    lastRecordedAtMilliseconds: recordedAt
                )
            )
        }
        return result
    }

    /// One stream's events from `fromVersion` on, in version order.
    static func stream(_ aggregateID: String, fromVersion: Int64, limit: Int) -> PostgresQuery {
        """
        SELECT \(unescaped: columns) FROM fluxgate_events
        WHERE aggregate_id = \(aggregateID) AND version >= \(max(fromVersion, 0)) ORDER BY version LIMIT \(Int64(limit))
        """
    }

    /// The event stored with `id`.
    static func event(id: String) -> PostgresQuery {
        "SELECT \(unescaped: columns) FROM fluxgate_events WHERE event_id = \(id)"
    }
}
