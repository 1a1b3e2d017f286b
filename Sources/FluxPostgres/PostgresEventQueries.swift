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
