import FluxCore
import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import ServiceLifecycle
import Synchronization

extension PostgresEventStore {
    /// A store run as a service of a `ServiceGroup`: its connection pool and its head watcher are child tasks of
    /// ``run()``, so nothing of the store outlives the group.
    ///
    /// Put it in the group before the services that use the store, and get the store from ``store()``: it is
    /// ready once the database is reached and migrated. On a graceful shutdown (which the group gives services in
    /// reverse order, so after the gateway has stopped) the service refuses new appends, answers the queued ones,
    /// stops the head watcher and then the pool. When the database cannot be reached within the operation timeout,
    /// ``run()`` and every ``store()`` throw `StoreError.storeUnavailable`.
    public final class Service: ServiceLifecycle.Service, Sendable {
        /// The database, without its password.
        public let location: PostgresLocation
        private let options: Options
        private let logger: Logger
        private let clock: @Sendable () -> Int64
        private let opened: EventLoopPromise<PostgresEventStore>
        private let started = Atomic<Bool>(false)

        public init(
            location: PostgresLocation, options: Options = Options(), logger: Logger = Logger(label: "fluxgate.postgres"),
            clock: @escaping @Sendable () -> Int64 = Timestamp.nowMilliseconds
        ) {
            self.location = location
            self.options = options
            self.logger = logger
            self.clock = clock
            self.opened = MultiThreadedEventLoopGroup.singleton.any().makePromise(of: PostgresEventStore.self)
        }

        deinit {
            // A service dropped without ever running: whoever waits for its store learns why.
            opened.fail(StoreError(.storeUnavailable, "the PostgreSQL store service for \(location) never ran; add it to the service group"))
        }

        /// The store, once ``run()`` has connected and migrated the database.
        /// - Throws: `StoreError.storeUnavailable` when it could not (or the service ended first).
        public func store() async throws -> PostgresEventStore {
            try await opened.futureResult.get()
        }

        /// Connects, migrates, follows the head, and serves until a graceful shutdown or cancellation; then closes.
        public func run() async throws {
            guard !started.exchange(true, ordering: .relaxed) else {
                throw StoreError(.storeUnavailable, "the PostgreSQL store service for \(location) is already running; run it once")
            }
            let client = PostgresClient(
                configuration: try location.clientConfiguration(maximumConnections: options.maximumConnections, timeout: options.operationTimeout),
                backgroundLogger: logger
            )
            let (location, options, logger, clock, opened) = (location, options, logger, clock, opened)
            try await withThrowingDiscardingTaskGroup { pool in
                pool.addTask { await client.run() }
                let store: PostgresEventStore
                do {
                    store = try await PostgresEventStore.opening(client: client, location: location, options: options, logger: logger, clock: clock)
                } catch {
                    opened.fail(error)
                    pool.cancelAll()
                    throw error
                }
                opened.succeed(store)
                // The head watcher ends before the pool: a query of the watcher that the pool's shutdown cut off
                // might never be answered.
                await withDiscardingTaskGroup { watcher in
                    watcher.addTask { await store.watchHead() }
                    try? await gracefulShutdown()
                    await store.close()
                    watcher.cancelAll()
                }
                pool.cancelAll()
            }
        }
    }
}
