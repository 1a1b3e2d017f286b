import FluxCore
import Foundation
import GRDB
import Testing

@testable import FluxSQLite

@Suite struct SQLiteEventSchemaTests {
    @Test func migratesAnExistingFile() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path("events.sqlite")
        // A file written by an older version: the first two migrations only, with one event in it.
        let old = try DatabasePool(path: path)
        try SQLiteEventSchema.migrator(upTo: "events-v1-meta").migrate(old)
        let epoch: String? = try await old.write { db in
            try db.execute(
                sql: SQLiteEventQueries.insertSQL,
                arguments: [1, "old-1", "s", "Thing", 0, "test.Old", 1_700_000_000_000, Data(#"{"old":true}"#.utf8)]
            )
            return try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'epoch'")
        }
        try old.close()

        let store = try SQLiteEventStore(path: path)
        #expect(store.epoch.rawValue == epoch, "migrating keeps the epoch")
        let applied = try await store.pool.read { db in try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations ORDER BY rowid") }
        #expect(applied == SQLiteEventSchema.migrations.map(\.identifier))
        let indexes = try await store.pool.read { db in try db.indexes(on: "events").map(\.name) }
        #expect(indexes.contains("events_by_event_type") && indexes.contains("events_by_aggregate_name"))
        #expect(try await store.event(id: "old-1")?.payload.bytes == Array(#"{"old":true}"#.utf8))
        let next = try await store.append(appendRequest("s", .exact(0), [newEvent("new-1")]))
        #expect(next.firstPosition == Position(2) && next.version == 1)
        #expect(try await store.read(after: .start, limit: 10, filter: EventFilter(eventTypes: ["test.Old"])).map(\.eventID) == ["old-1"])
        try await store.close()

        // Opening again applies nothing and changes nothing.
        let again = try SQLiteEventStore(path: path)
        #expect(again.epoch.rawValue == epoch)
        #expect(try await again.head() == Position(2))
        try await again.close()
    }

    @Test func refusesAFileFromANewerVersion() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path("events.sqlite")
        try await SQLiteEventStore(path: path).close()
        let pool = try DatabasePool(path: path)
        try await pool.write { db in try db.execute(sql: "INSERT INTO grdb_migrations (identifier) VALUES ('events-v9-future')") }
        try pool.close()
        do {
            _ = try SQLiteEventStore(path: path)
            Issue.record("a file with unknown migrations must be refused")
        } catch let error as StoreError {
            #expect(error.code == .storeUnavailable)
            #expect(error.message.contains("newer"), "\(error.message)")
        }
    }
}
