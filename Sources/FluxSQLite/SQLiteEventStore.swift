import FluxCore
import GRDB
import Logging
import Synchronization

/// The embedded event store: one SQLite file in WAL mode, no server.
///
/// - Appends go through a single writer that batches concurrent appenders into one transaction (group commit)
///   without weakening per-request atomicity or conflict detection (see `SQLiteGroupCommitter`); with the
///   default durability an acknowledged append survives a crash of the process and of the operating system.
/// - Positions are dense (1, 2, 3, … with no gap) and commit order is position order.
/// - Idempotency: retrying an append with the same event ids answers as the first append did.
/// - Reads run concurrently on reader connections and see only committed events.
///
/// Open one store per file per process; call ``close()`` before dropping it to let queued appends commit.
public final class SQLiteEventStore: EventStore {
    /// The store's identity, made when the file was created; it survives reopening.
    public let epoch: StoreEpoch
    /// The path of the SQLite file.
    public let path: String
    /// The durability of acknowledged appends.
    public let durability: SQLiteDurability

    let pool: DatabasePool
    /// Point reads (the head, an event by id, a short unfiltered page) on a read-only connection of their own, run on
    /// the caller's thread: an indexed lookup costs about 10 µs, and a hop to one of the pool's reader threads and
    /// back cost 7–20 times that (`fluxgate-bench legacy`), the whole of a lookup for the original consumer's one GET
    /// per event. Longer pages, filtered pages and streams, which can be long reads, stay on the pool's readers.
    private let lookups: DatabaseQueue
    private let signal: HeadSignal
    private let writer: SQLiteGroupCommitter
    private let closed = Atomic<Bool>(false)

    /// Opens the store at `path`, creating the file and its parent directories if needed, and brings its schema
    /// up to date (named migrations; a new file gets a new random epoch).
    ///
    /// - Parameters:
    ///   - path: the SQLite file, e.g. `fluxgate-data/events.sqlite`.
    ///   - durability: `.full` (default) to survive an operating system crash, `.normal` to survive a process crash only.
    ///   - logger: where the store logs (info and below, errors of failed commits).
    ///   - clock: milliseconds since 1970 for `recorded_at` (the system clock by default).
    /// - Throws: `StoreError.storeUnavailable` when the file cannot be created, opened or migrated,
    ///   `StoreError.corrupted` when its epoch is missing.
    public init(
        path: String,
        durability: SQLiteDurability = .full,
        logger: Logger = Logger(label: "fluxgate.sqlite"),
        clock: @escaping @Sendable () -> Int64 = Timestamp.nowMilliseconds
    ) throws {
        self.path = path
        self.durability = durability
        let pool = try SQLiteFile.openPool(path: path, durability: durability, what: "event store")
        let head: Int64
        do {
            try SQLiteEventSchema.migrate(pool, path: path)
            (epoch, head) = try pool.read { db in (try SQLiteEventSchema.epoch(db), try SQLiteEventQueries.head(db)) }
        } catch let error as StoreError {
            try? pool.close()
            throw error
        } catch {
            try? pool.close()
            throw StoreError(
                .storeUnavailable,
                "cannot prepare the event store at \(path) (\(SQLiteFile.describe(error))); check that the file is a fluxgate event store"
            )
        }
        do {
            lookups = try SQLiteFile.openLookupConnection(path: path, what: "event store")
        } catch {
            try? pool.close()
            throw error
        }
        self.pool = pool
        self.signal = HeadSignal(head: Position(head))
        self.writer = SQLiteGroupCommitter(pool: pool, signal: signal, clock: clock, logger: logger)
        logger.info(
            "opened the SQLite event store",
            metadata: ["path": "\(path)", "head": "\(head)", "epoch": "\(epoch)", "durability": "\(durability)"]
        )
    }

    /// Refuses new appends, waits for queued appends to commit, and closes the file. Reads and appends after
    /// this throw `StoreError.storeUnavailable`. Closing twice is harmless.
    public func close() async throws {
        await writer.close()
        closed.store(true, ordering: .releasing)
        // Waits for running reads; closing a closed pool or queue does nothing. Both are closed even when the first
        // fails; the first failure is reported.
        var failure: (any Error)?
        for connection in [pool as any DatabaseWriter, lookups] {
            do {
                try connection.close()
            } catch {
                failure = failure ?? error
            }
        }
        if let error = failure {
            throw StoreError(
                .storeUnavailable,
                "could not close the event store at \(path) (\(SQLiteFile.describe(error))); a statement is still open: retry the close"
            )
        }
    }

    /// How the writer has batched appends since the store was opened.
    public var writerStatistics: SQLiteWriterStatistics { writer.statistics }

    // MARK: EventWriter

    @discardableResult
    public func append(_ request: AppendRequest) async throws -> AppendResult {
        try request.validate()
        return try await writer.append(request)
    }

    /// Appends requests queued together, so that they share one transaction (tests use it to build a batch
    /// deterministically); each gets its own result, as if appended one by one in this order.
    func appendTogether(_ requests: [AppendRequest]) async -> [Result<AppendResult, any Error>] {
        var results: [Result<AppendResult, any Error>?] = []
        var valid: [(index: Int, request: AppendRequest)] = []
        for (index, request) in requests.enumerated() {
            do {
                try request.validate()
                results.append(nil)
                valid.append((index, request))
            } catch {
                results.append(.failure(error))
            }
        }
        let committed = await writer.appendTogether(valid.map(\.request))
        for (entry, result) in zip(valid, committed) { results[entry.index] = result }
        return results.map { $0! }
    }

    // MARK: EventReader

    public func head() async throws -> Position {
        Position(try lookingUp { db in try SQLiteEventQueries.head(db) })
    }

    // Reads by ids and names with a control character find nothing (`EventKey`): GRDB binds text as a C string,
    // so `acc-1\0x` would be looked up as `acc-1`.

    public func read(after position: Position, limit: Int, filter: EventFilter) async throws -> [RecordedEvent] {
        guard limit > 0, let filter = filter.printableValues else { return [] }
        if limit <= Self.smallPage, filter.isEmpty {
            // A short unfiltered page is a bounded range of the primary key: a point read (see `lookups`).
            return try lookingUp { db in try SQLiteEventQueries.page(after: position, limit: limit, filter: filter, db) }
        }
        return try await reading { db in try SQLiteEventQueries.page(after: position, limit: limit, filter: filter, db) }
    }

    /// Unfiltered pages up to this many events are read like a lookup: the original feed's pages of 20 are.
    static let smallPage = 32

    public func readStream(_ aggregateID: String, fromVersion: Int64, limit: Int) async throws -> [RecordedEvent] {
        guard limit > 0, EventKey.isPrintable(aggregateID) else { return [] }
        return try await reading { db in try SQLiteEventQueries.stream(aggregateID, fromVersion: fromVersion, limit: limit, db) }
    }

    public func event(id: String) async throws -> RecordedEvent? {
        guard EventKey.isPrintable(id) else { return nil }
        return try lookingUp { db in try SQLiteEventQueries.event(id: id, db) }
    }

    public func streams(after cursor: String?, prefix: String, aggregateNames: Set<String>, limit: Int) async throws -> [StreamSummary] {
        guard limit > 0, let names = StreamListing.printableArguments(after: cursor, prefix: prefix, aggregateNames: aggregateNames) else {
            return []
        }
        return try await reading { db in
            try SQLiteEventQueries.streams(after: cursor, prefix: prefix, aggregateNames: names, limit: limit, db)
        }
    }

    public func waitForHead(beyond position: Position, timeout: Duration) async throws -> Position {
        await signal.wait(beyond: position, timeout: timeout)
    }

    /// Runs a read on a reader connection, turning database errors into `StoreError.storeUnavailable`.
    private func reading<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try checkOpen()
        do {
            return try await pool.read(body)
        } catch {
            throw readFailure(error)
        }
    }

    /// Runs a one-statement point read on the lookup connection, on this thread (see `lookups`); one statement needs
    /// no transaction to see one committed state.
    private func lookingUp<T>(_ body: (Database) throws -> T) throws -> T {
        try checkOpen()
        do {
            return try lookups.inDatabase(body)
        } catch {
            throw readFailure(error)
        }
    }

    private func checkOpen() throws {
        if closed.load(ordering: .acquiring) {
            throw StoreError(.storeUnavailable, "the event store at \(path) is closed; open it again to read")
        }
    }

    /// A read's error as the store reports it: `StoreError.storeUnavailable` for a database error; a cancelled read
    /// (the client went away) stays a `CancellationError`, which is no failure of the store.
    private func readFailure(_ error: any Error) -> any Error {
        if error is StoreError || error is CancellationError { return error }
        return StoreError(.storeUnavailable, "cannot read the event store at \(path) (\(SQLiteFile.describe(error))); retry later")
    }
}
