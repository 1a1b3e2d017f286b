import FluxCore
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization

extension PostgresEventStore {
    /// A store run as a service of a `ServiceGroup`: ``run()`` opens it and closes it when the group shuts down.
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
        ///
        /// The close is ``PostgresEventStore/close()``: it answers the queued appends, then stops the head watcher and
        /// the pool, waiting for each at most ``PostgresEventStore/closeLimit``. A query that the pool's shutdown cut off
        /// may never be answered, and a shutdown must not wait for it for ever (as one did when the watcher and the
        /// pool were child tasks of this method, which a task group waits for whatever they do).
        public func run() async throws {
            guard !started.exchange(true, ordering: .relaxed) else {
                throw StoreError(.storeUnavailable, "the PostgreSQL store service for \(location) is already running; run it once")
            }
            let store: PostgresEventStore
            do {
                store = try await PostgresEventStore.connect(to: location, options: options, logger: logger, clock: clock)
            } catch {
                opened.fail(error)
                throw error
            }
            opened.succeed(store)
            try? await gracefulShutdown()
            await store.close()
        }
    }
}
