import FluxCore
import GRDB

/// The event store's schema: named, ordered migrations, and the epoch made once when the file is created.
///
/// There is no streams table: a stream's current version is one seek at the end of its `(aggregate_id, version)`
/// range of the unique index, and not keeping a second copy of it saves a B-tree write per append.
enum SQLiteEventSchema {
    /// The prefix of every migration of this schema (the checkpoint schema may share the file).
    static let migrationPrefix = "events-"

    /// The migrations, in order. Never edit a shipped migration: add a new one.
    static let migrations: [(identifier: String, migrate: @Sendable (Database) throws -> Void)] = [
        (
            "events-v1-events",
            { db in
                try db.execute(
                    sql: """
                        CREATE TABLE events (
                            position INTEGER PRIMARY KEY CHECK (position > 0),
                            event_id TEXT NOT NULL UNIQUE,
                            aggregate_id TEXT NOT NULL,
                            aggregate_name TEXT NOT NULL,
                            version INTEGER NOT NULL CHECK (version >= 0),
                            event_type TEXT NOT NULL,
                            recorded_at INTEGER NOT NULL,
                            payload BLOB NOT NULL,
                            UNIQUE (aggregate_id, version)
                        )
                        """
                )
            }
        ),
        (
            "events-v1-meta",
            { db in
                try db.execute(sql: "CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL) WITHOUT ROWID")
                try db.execute(sql: "INSERT INTO meta (key, value) VALUES ('epoch', ?)", arguments: [StoreEpoch.random().rawValue])
            }
        ),
        (
            "events-v1-filter-indexes",
            { db in
                // (column, position): a filtered page is one index range read in position order.
                try db.execute(sql: "CREATE INDEX events_by_event_type ON events (event_type, position)")
                try db.execute(sql: "CREATE INDEX events_by_aggregate_name ON events (aggregate_name, position)")
            }
        ),
        (
            "events-v2-consumer-groups",
            { db in
                // Consumer groups' state beside the events: definitions with their checkpoints, and parked events.
                try db.execute(
                    sql: """
                        CREATE TABLE consumer_groups (
                            name TEXT PRIMARY KEY NOT NULL,
                            filter TEXT NOT NULL,
                            start_position INTEGER NOT NULL CHECK (start_position >= 0),
                            checkpoint INTEGER NOT NULL CHECK (checkpoint >= 0),
                            lease_timeout_ms INTEGER NOT NULL,
                            maximum_attempts INTEGER NOT NULL,
                            backoff_ms INTEGER NOT NULL,
                            maximum_backoff_ms INTEGER NOT NULL,
                            holds_aggregate INTEGER NOT NULL
                        ) WITHOUT ROWID
                        """
                )
                try db.execute(
                    sql: """
                        CREATE TABLE consumer_group_parked (
                            group_name TEXT NOT NULL,
                            position INTEGER NOT NULL,
                            attempts INTEGER NOT NULL,
                            reason TEXT NOT NULL,
                            parked_at INTEGER NOT NULL,
                            PRIMARY KEY (group_name, position)
                        ) WITHOUT ROWID
                        """
                )
            }
        ),
        (
            "events-v3-group-acknowledged",
            { db in
                // Events a group acknowledged after its checkpoint (`5-9,12`), so that a restart does not deliver them again.
                try db.execute(sql: "ALTER TABLE consumer_groups ADD COLUMN acknowledged TEXT NOT NULL DEFAULT ''")
            }
        ),
        (
            "events-v4-webhook-sinks",
            { db in
                // Webhook sinks' definitions (JSON: url, filter, secrets, policy) and whether they deliver; each one's
                // checkpoint and parked events are its consumer group's (`sink.<name>`).
                try db.execute(
                    sql: """
                        CREATE TABLE webhook_sinks (
                            name TEXT PRIMARY KEY NOT NULL,
                            definition TEXT NOT NULL,
                            enabled INTEGER NOT NULL DEFAULT 1,
                            disabled_reason TEXT NOT NULL DEFAULT ''
                        ) WITHOUT ROWID
                        """
                )
            }
        ),
    ]

    /// A migrator holding the migrations up to and including `last` (all of them by default).
    static func migrator(upTo last: String? = nil) -> DatabaseMigrator {
        var migrator = DatabaseMigrator()
        for migration in migrations {
            migrator.registerMigration(migration.identifier, migrate: migration.migrate)
            if migration.identifier == last { break }
        }
        return migrator
    }

    /// Brings the file's schema up to date; refuses a file written by a newer version of fluxgate.
    static func migrate(_ pool: DatabasePool, path: String) throws {
        let known = Set(migrations.map(\.identifier))
        let applied: [String] = try pool.read { db in
            guard try db.tableExists("grdb_migrations") else { return [] }
            return try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations")
        }
        let unknown = applied.filter { $0.hasPrefix(migrationPrefix) && !known.contains($0) }
        if !unknown.isEmpty {
            throw StoreError(
                .storeUnavailable,
                "the event store at \(path) has schema migrations this fluxgate does not know (\(unknown.joined(separator: ", "))); it was written by a newer version: upgrade fluxgate"
            )
        }
        try migrator().migrate(pool)
    }

    /// The store's epoch, read from the meta table.
    static func epoch(_ db: Database) throws -> StoreEpoch {
        guard let raw = try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'epoch'") else {
            throw StoreError(.corrupted, "the event store has no epoch in its meta table; restore the file from a backup")
        }
        return StoreEpoch(rawValue: raw)
    }
}
