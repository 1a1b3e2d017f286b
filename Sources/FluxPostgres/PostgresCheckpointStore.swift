import FluxCore
import Logging
import PostgresNIO

/// Consumers' checkpoints in a PostgreSQL database: one row per consumer name (position and store epoch), in the
/// `fluxgate_checkpoints` table (created by the event store's migrations, or by ``connect(to:logger:)``).
public final class PostgresCheckpointStore: CheckpointStore {
    /// The database, without its password.
    public let location: PostgresLocation
    private let client: PostgresClient
    private let runTask: Task<Void, Never>
    private let logger: Logger
    private let timeout: Duration

    private init(location: PostgresLocation, client: PostgresClient, runTask: Task<Void, Never>, logger: Logger, timeout: Duration) {
        self.location = location
        self.client = client
        self.runTask = runTask
        self.logger = logger
        self.timeout = timeout
    }

    /// Connects and brings the schema up to date.
    /// - Throws: `StoreError.storeUnavailable` when the database cannot be reached or migrated.
    public static func connect(
        to location: PostgresLocation, logger: Logger = Logger(label: "fluxgate.postgres.checkpoints"), timeout: Duration = .seconds(10)
    ) async throws -> PostgresCheckpointStore {
        let client = PostgresClient(configuration: try location.clientConfiguration(maximumConnections: 2, timeout: timeout), backgroundLogger: logger)
        let runTask = Task { await client.run() }
        do {
            _ = try await withTimeout(timeout, "connecting to \(location)") {
                try await client.withConnection { connection in
                    try await PostgresEventSchema.migrate(connection, location: location, logger: logger)
                }
            }
        } catch {
            runTask.cancel()
            _ = await awaitEnd(of: runTask, within: timeout)
            if let error = error as? StoreError { throw error }
            throw StoreError(.storeUnavailable, "cannot open the checkpoint store in \(location) (\(PostgresErrors.describe(error))); check that PostgreSQL runs there")
        }
        return PostgresCheckpointStore(location: location, client: client, runTask: runTask, logger: logger, timeout: timeout)
    }

    public func load(consumer: String) async throws -> Checkpoint? {
        let (client, logger) = (self.client, self.logger)
        do {
            return try await withTimeout(timeout, "loading the checkpoint of \(consumer)") {
                let rows = try await client.query(
                    "SELECT position, epoch FROM fluxgate_checkpoints WHERE consumer = \(consumer)", logger: logger
                )
                for try await (position, epoch) in rows.decode((Int64, String).self) {
                    return Checkpoint(position: Position(position), epoch: StoreEpoch(rawValue: epoch))
                }
                return nil
            }
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError(.storeUnavailable, "cannot read the checkpoint of \(consumer) in \(location) (\(PostgresErrors.describe(error))); retry later")
        }
    }

    public func save(_ checkpoint: Checkpoint, consumer: String) async throws {
        let (client, logger) = (self.client, self.logger)
        let now = Timestamp.nowMilliseconds()
        do {
            _ = try await withTimeout(timeout, "saving the checkpoint of \(consumer)") {
                try await client.query(
                    """
                    INSERT INTO fluxgate_checkpoints (consumer, position, epoch, saved_at)
                    VALUES (\(consumer), \(checkpoint.position.rawValue), \(checkpoint.epoch.rawValue), \(now))
                    ON CONFLICT (consumer) DO UPDATE SET position = excluded.position, epoch = excluded.epoch, saved_at = excluded.saved_at
                    """,
                    logger: logger
                )
            }
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError(.storeUnavailable, "cannot save the checkpoint of \(consumer) in \(location) (\(PostgresErrors.describe(error))); retry later")
        }
    }

    /// Disconnects; loads and saves after this fail.
    public func close() async {
        runTask.cancel()
        if !(await awaitEnd(of: runTask, within: timeout)) {
            logger.warning("the connection pool did not stop within \(timeout) of close(); leaving it behind", metadata: ["database": "\(location)"])
        }
    }
}
