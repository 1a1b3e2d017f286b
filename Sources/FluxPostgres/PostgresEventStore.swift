import FluxCore
import Logging
import PostgresNIO
import Synchronization

/// An event store in a PostgreSQL database, for several gateway nodes on one database.
///
/// - Positions are dense (1, 2, 3, … with no gap) and commit order is position order across every node appending
///   to the database (see `PostgresGroupCommitter` for how, and what it costs).
/// - Each node batches its concurrent appenders into one transaction (group commit); idempotent retries by event id.
/// - After every commit a `NOTIFY` wakes the head waiters of every node; the store also polls the head as a safety
///   net, so a lost notification (a dropped connection) costs latency, never an event. It reconnects by itself
///   after a database restart.
///
/// Open it with ``connect(to:options:logger:)``; call ``close()`` before dropping it.
public final class PostgresEventStore: EventStore {
    /// Tuning of a store; the defaults suit a gateway node.
    public struct Options: Sendable {
        /// Connections in this node's pool (reads, the writer and the listener share it).
        public var maximumConnections = 12
        /// How long an operation waits for a connection or an answer before failing with `storeUnavailable`.
        public var operationTimeout: Duration = .seconds(10)
        /// How often the head is read as a safety net for lost notifications.
        public var headPollInterval: Duration = .seconds(1)
        /// Append transactions this node keeps at the server at once (1 or more). Every appending transaction of
        /// every node waits for the head row's lock, so a second one only overlaps its round trip with the first's
        /// commit, while it splits the queue into smaller batches; one is the faster choice measured here (see the
        /// README's PostgreSQL figures, `fluxgate-bench postgres`).
        public var batchesInFlight = 1

        public init() {}
    }

    /// The store's identity, made when the schema was created; shared by every node on the database.
    public let epoch: StoreEpoch
    /// The database, without its password.
    public let location: PostgresLocation

    private let client: PostgresClient
    private let options: Options
    let logger: Logger
    private let signal: HeadSignal
    private let writer: PostgresGroupCommitter
    private let tasks: Mutex<(run: Task<Void, Never>?, watch: Task<Void, Never>?)>
    private let closed = Atomic<Bool>(false)

    private init(
        client: PostgresClient, location: PostgresLocation, epoch: StoreEpoch, head: Int64, options: Options, logger: Logger,
        clock: @escaping @Sendable () -> Int64
    ) {
        self.client = client
        self.location = location
        self.epoch = epoch
        self.options = options
        self.logger = logger
        self.signal = HeadSignal(head: Position(head))
        self.writer = PostgresGroupCommitter(
            client: client, location: location, signal: signal, clock: clock, timeout: options.operationTimeout,
            batchesInFlight: max(1, options.batchesInFlight), logger: logger
        )
        self.tasks = Mutex((nil, nil))
    }

    /// Connects to the database, brings its schema up to date (named migrations, run once even when several nodes
    /// start together) and starts following the head.
    ///
    /// - Throws: `StoreError.storeUnavailable` when the database cannot be reached within the operation timeout,
    ///   refuses the user, or was migrated by a newer fluxgate.
    public static func connect(
        to location: PostgresLocation, options: Options = Options(), logger: Logger = Logger(label: "fluxgate.postgres"),
        clock: @escaping @Sendable () -> Int64 = Timestamp.nowMilliseconds
    ) async throws -> PostgresEventStore {
        let client = PostgresClient(
            configuration: try location.clientConfiguration(maximumConnections: options.maximumConnections, timeout: options.operationTimeout), backgroundLogger: logger
        )
        let runTask = Task { await client.run() }
        do {
            let store = try await opening(client: client, location: location, options: options, logger: logger, clock: clock)
            let watch = Task { await store.watchHead() }
            store.tasks.withLock { $0 = (runTask, watch) }
            return store
        } catch {
            runTask.cancel()
            _ = await awaitEnd(of: runTask, within: closeLimit)
            throw error
        }
    }

    /// Migrates the database through `client` (which must be running) and makes the store; the caller runs its head
    /// watcher (``watchHead()``).
    static func opening(
        client: PostgresClient, location: PostgresLocation, options: Options, logger: Logger, clock: @escaping @Sendable () -> Int64
    ) async throws -> PostgresEventStore {
        do {
            let (epoch, head) = try await withTimeout(options.operationTimeout, "connecting to \(location)") {
                try await client.withConnection { connection in
                    let epoch = try await PostgresEventSchema.migrate(connection, location: location, logger: logger)
                    return (epoch, try await PostgresEventQueries.head(connection, logger: logger))
                }
            }
            logger.info("opened the PostgreSQL event store", metadata: ["database": "\(location)", "head": "\(head)", "epoch": "\(epoch)"])
            return PostgresEventStore(
                client: client, location: location, epoch: epoch, head: head, options: options, logger: logger, clock: clock
            )
        } catch {
            if let error = error as? StoreError { throw error }
            throw StoreError(
                .storeUnavailable,
                "cannot open the event store in \(location) (\(PostgresErrors.describe(error))); check that PostgreSQL runs there and accepts this user"
            )
        }
    }

    /// Refuses new appends, waits for queued appends to be answered, and disconnects (a store run by a
    /// ``Service`` disconnects when that service ends). Closing twice is harmless.
    public func close() async {
        await writer.close()
        closed.store(true, ordering: .releasing)
        let (run, watch) = tasks.withLock { tasks in
            defer { tasks = (nil, nil) }
            return tasks
        }
        // The head watcher first, while the pool still serves its connections: a query of the watcher that the pool's
        // shutdown cuts off may never be answered (seen in a test run that then waited for ever). Neither wait is
        // unbounded: a task that does not end in time is left behind, and said so.
        for (task, name) in [(watch, "head watcher"), (run, "connection pool")] {
            guard let task else { continue }
            task.cancel()
            if !(await awaitEnd(of: task, within: Self.closeLimit)) {
                logger.warning("the \(name) did not stop within \(Self.closeLimit) of close(); leaving it behind", metadata: ["database": "\(location)"])
            }
        }
    }

    /// How long `close()` waits for each of its background tasks to end.
    static let closeLimit = Duration.seconds(10)

    /// How this node's writer has batched appends since the store was opened.
    public var writerStatistics: PostgresWriterStatistics { writer.statistics }

    // MARK: EventWriter

    @discardableResult
    public func append(_ request: AppendRequest) async throws -> AppendResult {
        try request.validate()
        try checkOpen()
        return try await writer.append(request)
    }

    // MARK: EventReader

    public func head() async throws -> Position {
        let logger = self.logger
        return Position(try await reading { connection in try await PostgresEventQueries.head(connection, logger: logger) })
    }

    // Reads by ids and names with a control character find nothing (`EventKey`): PostgreSQL would refuse a NUL.

    public func read(after position: Position, limit: Int, filter: EventFilter) async throws -> [RecordedEvent] {
        guard limit > 0, let filter = filter.printableValues else { return [] }
        let logger = self.logger
        let query = PostgresEventQueries.page(after: position, limit: limit, filter: filter)
        return try await reading { connection in
            try await PostgresEventQueries.events(connection.query(query, logger: logger), capacity: min(limit, 1024))
        }
    }

    public func readStream(_ aggregateID: String, fromVersion: Int64, limit: Int) async throws -> [RecordedEvent] {
        guard limit > 0, EventKey.isPrintable(aggregateID) else { return [] }
        let logger = self.logger
        let query = PostgresEventQueries.stream(aggregateID, fromVersion: fromVersion, limit: limit)
        return try await reading { connection in
            try await PostgresEventQueries.events(connection.query(query, logger: logger), capacity: min(limit, 1024))
        }
    }

    public func event(id: String) async throws -> RecordedEvent? {
        guard EventKey.isPrintable(id) else { return nil }
        let logger = self.logger
        return try await reading { connection in
            try await PostgresEventQueries.events(connection.query(PostgresEventQueries.event(id: id), logger: logger)).first
        }
    }

    public func streams(after cursor: String?, prefix: String, aggregateNames: Set<String>, limit: Int) async throws -> [StreamSummary] {
        guard limit > 0, let names = StreamListing.printableArguments(after: cursor, prefix: prefix, aggregateNames: aggregateNames) else {
            return []
        }
        let logger = self.logger
        let query = PostgresEventQueries.streams(after: cursor, prefix: prefix, aggregateNames: names, limit: limit)
        return try await reading { connection in
            try await PostgresEventQueries.streamSummaries(connection.query(query, logger: logger))
        }
    }

    public func waitForHead(beyond position: Position, timeout: Duration) async throws -> Position {
        await signal.wait(beyond: position, timeout: timeout)
    }

    private func checkOpen() throws {
        if closed.load(ordering: .acquiring) {
            throw StoreError(.storeUnavailable, "the event store in \(location) is closed; open it again")
        }
    }

    /// Runs a read on a pooled connection within the operation timeout; database errors become `storeUnavailable`.
    func reading<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        try checkOpen()
        let client = self.client
        do {
            return try await withTimeout(options.operationTimeout, "reading \(location)") {
                try await client.withConnection { connection in try await body(connection) }
            }
        } catch let error as StoreError {
            throw error
        } catch {
            // A read cancelled because its client went away is no failure of the store.
            if Task.isCancelled { throw CancellationError() }
            throw StoreError(.storeUnavailable, "cannot read the event store in \(location) (\(PostgresErrors.describe(error))); retry later")
        }
    }

    /// Follows the head of the database: LISTEN for the writers' notifications (reconnecting with backoff when the
    /// connection drops, and reading the head on every reconnect), and poll it as a safety net.
    /// Follows the head until cancelled: a `LISTEN` connection for other nodes' commits and a poll every
    /// `headPollInterval` as a safety net.
    func watchHead() async {
        let (client, signal, pollInterval, timeout, logger) = (client, signal, options.headPollInterval, options.operationTimeout, logger)
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                var failures = 0
                while !Task.isCancelled {
                    do {
                        try await client.withConnection { connection in
                            try await connection.listen(on: PostgresGroupCommitter.channel) { notifications in
                                // Whatever committed while nobody listened (bounded: a connection that stops answering
                                // ends this listen, and the loop connects again).
                                signal.publish(Position(try await withTimeout(timeout, "reading the head") {
                                    try await PostgresEventQueries.head(connection, logger: logger)
                                }))
                                for try await notification in notifications {
                                    if let head = Int64(notification.payload) { signal.publish(Position(head)) }
                                }
                            }
                        }
                        failures = 0
                    } catch {
                        if Task.isCancelled { return }
                        failures += 1
                        logger.warning(
                            "lost the notification connection; reconnecting", metadata: ["error": "\(PostgresErrors.describe(error))"]
                        )
                    }
                    try? await Task.sleep(for: .milliseconds(min(2000, 50 << min(failures, 6))))
                }
            }
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: pollInterval)
                    if Task.isCancelled { return }
                    do {
                        let rows = try await client.query("SELECT position FROM fluxgate_head WHERE id = 1", logger: logger)
                        for try await head in rows.decode(Int64.self) { signal.publish(Position(head)) }
                    } catch {
                        logger.debug("could not poll the head", metadata: ["error": "\(PostgresErrors.describe(error))"])
                    }
                }
            }
        }
    }
}
