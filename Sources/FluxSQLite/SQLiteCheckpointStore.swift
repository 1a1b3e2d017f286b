import FluxCore
import GRDB
import Synchronization

/// Consumers' checkpoints in an SQLite file: one row per consumer name (position and store epoch).
///
/// Use its own file, or the event store's file (the schemas do not overlap). Saves are durable like the event
/// store's default: synchronous = FULL in WAL mode.
public final class SQLiteCheckpointStore: CheckpointStore {
    /// The path of the SQLite file.
    public let path: String
    private let pool: DatabasePool
    private let closed = Atomic<Bool>(false)

    private static let migrations: [(identifier: String, migrate: @Sendable (Database) throws -> Void)] = [
        (
            "checkpoints-v1",
            { db in
                try db.execute(
                    sql: """
                        CREATE TABLE checkpoints (
                            consumer TEXT PRIMARY KEY NOT NULL,
                            position INTEGER NOT NULL CHECK (position >= 0),
                            epoch TEXT NOT NULL,
                            saved_at INTEGER NOT NULL
                        ) WITHOUT ROWID
                        """
                )
            }
        )
    ]

    /// Opens (creating it and its parent directories if needed) the checkpoint store at `path`.
    /// - Throws: `StoreError.storeUnavailable` when the file cannot be created, opened or migrated.
    public init(path: String) throws {
        self.path = path
        let pool = try SQLiteFile.openPool(path: path, durability: .full, what: "checkpoint store")
        var migrator = DatabaseMigrator()
        for migration in Self.migrations {
            migrator.registerMigration(migration.identifier, migrate: migration.migrate)
        }
        do {
            try migrator.migrate(pool)
        } catch {
            try? pool.close()
            throw StoreError(
                .storeUnavailable,
                "cannot prepare the checkpoint store at \(path) (\(SQLiteFile.describe(error))); check that the file is a fluxgate database"
            )
        }
        self.pool = pool
    }

    public func load(consumer: String) async throws -> Checkpoint? {
        try checkOpen()
        do {
            return try await pool.read { db in
                let row = try Row.fetchOne(
                    db.cachedStatement(sql: "SELECT position, epoch FROM checkpoints WHERE consumer = ?"),
                    arguments: [consumer]
                )
                return row.map { Checkpoint(position: Position($0[0] as Int64), epoch: StoreEpoch(rawValue: $0[1])) }
            }
        } catch {
            throw StoreError(.storeUnavailable, "cannot read the checkpoint of \(consumer) at \(path) (\(SQLiteFile.describe(error))); retry later")
        }
    }

    public func save(_ checkpoint: Checkpoint, consumer: String) async throws {
        try checkOpen()
        let now = Timestamp.nowMilliseconds()
        do {
            try await pool.write { db in
                try db.cachedStatement(
                    sql: """
                        INSERT INTO checkpoints (consumer, position, epoch, saved_at) VALUES (?, ?, ?, ?)
                        ON CONFLICT (consumer) DO UPDATE SET position = excluded.position, epoch = excluded.epoch, saved_at = excluded.saved_at
                        """
                ).execute(arguments: [consumer, checkpoint.position.rawValue, checkpoint.epoch.rawValue, now])
            }
        } catch {
            throw StoreError(.storeUnavailable, "cannot save the checkpoint of \(consumer) at \(path) (\(SQLiteFile.describe(error))); retry later")
        }
    }

    /// Closes the file; loads and saves after this throw `StoreError.storeUnavailable`. Closing twice is harmless.
    public func close() throws {
        closed.store(true, ordering: .releasing)
        do {
            try pool.close()  // closing a closed pool does nothing
        } catch {
            throw StoreError(.storeUnavailable, "could not close the checkpoint store at \(path) (\(SQLiteFile.describe(error))); retry the close")
        }
    }

    private func checkOpen() throws {
        if closed.load(ordering: .acquiring) {
            throw StoreError(.storeUnavailable, "the checkpoint store at \(path) is closed; open it again")
        }
    }
}
