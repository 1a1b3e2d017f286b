import FluxCore
import Logging
import NIOCore
import PostgresNIO
import Synchronization

/// The writer of one node: queues concurrent appends and commits everything queued in one transaction (group
/// commit), so that one round of `BEGIN … COMMIT` and one WAL flush serve many appenders.
///
/// **Dense positions in commit order, across nodes.** Every appending transaction, on every node, first locks the
/// single row of `fluxgate_head` (`SELECT … FOR UPDATE`), takes its positions after the head it read, and moves the
/// head before it commits. The row lock is held until COMMIT, so a second transaction can take positions only after
/// the first has committed (or rolled back, leaving no position behind): positions are dense, and commit order is
/// position order. PostgreSQL releases a transaction's locks only after the commit is visible to new snapshots, so
/// a reader that sees position p+1 also sees p: no reader can pass a position that commits later (the gap that a
/// sequence or identity column would leave). The cost: appends on the whole database are serialized for the time
/// of one transaction, which group commit spreads over every request of the batch.
///
/// **One round trip per batch.** A batch is one call of the `fluxgate_append_v1` function (schema migration
/// `events-v2-append-function`), a single statement committed on its own: it locks the head, applies the requests in
/// queue order (each seeing the effects of those before it), moves the head and queues the NOTIFY.
///
/// **Per-request atomicity.** For each request the function checks that none of its event ids is stored, that the
/// stream's aggregate name is the request's (migration `events-v4-append-aggregate-name`) and that its version meets
/// the expectation, then inserts all of its events with one INSERT; a request that fails a check writes nothing and
/// gets its own outcome while the others of the batch are stored. Should a statement still
/// fail (a server error aborts the whole transaction), nothing of the batch is stored and its requests are committed
/// again one per transaction, so that the failure stays with its own request.
final class PostgresGroupCommitter: Sendable {
    private struct Pending: Sendable {
        var request: AppendRequest
        var continuation: CheckedContinuation<AppendResult, any Error>
    }

    private struct State {
        var statistics = PostgresWriterStatistics()
        /// Connections of writer loops that ended, kept for the next ones (at most one per loop that may run).
        var idleConnections: [PostgresConnection] = []
        var nextConnectionID = 0
        /// `close()` took the kept connections: a loop ending after it closes its own.
        var connectionsTaken = false
    }

    /// The most requests committed in one transaction.
    static let maximumBatch = 256
    /// The longest a writer waits for the appenders it has just answered (see `GroupCommitQueue.gather`).
    static let maximumGatherWindow = Duration.milliseconds(1)
    /// The channel of the NOTIFY sent with every commit that moves the head (its payload is the new head).
    static let channel = "fluxgate_head"

    private let client: PostgresClient
    private let location: PostgresLocation
    private let signal: HeadSignal
    private let logger: Logger
    private let clock: @Sendable () -> Int64
    private let timeout: Duration
    /// Batches at the server at once (`PostgresEventStore.Options.batchesInFlight`), one writer loop each. With
    /// several, the next batch is already at the server, waiting for the head row's lock, while the previous one
    /// commits.
    private let batchesInFlight: Int
    private let queue: GroupCommitQueue<Pending>
    private let state = Mutex(State())

    init(
        client: PostgresClient, location: PostgresLocation, signal: HeadSignal, clock: @escaping @Sendable () -> Int64,
        timeout: Duration, batchesInFlight: Int, logger: Logger
    ) {
        self.client = client
        self.location = location
        self.signal = signal
        self.clock = clock
        self.timeout = timeout
        self.batchesInFlight = batchesInFlight
        self.queue = GroupCommitQueue(maximumBatch: Self.maximumBatch, maximumWriters: batchesInFlight)
        self.logger = logger
    }

    deinit {
        // A store dropped without `close()`: close the kept connections (postgres-nio requires it).
        for connection in state.withLock({ $0.idleConnections }) {
            connection.close().whenComplete { _ in _ = connection }
        }
    }

    var statistics: PostgresWriterStatistics { state.withLock { $0.statistics } }

    /// Queues a validated request and waits for the commit of the batch that carries it.
    func append(_ request: AppendRequest) async throws -> AppendResult {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<AppendResult, any Error>) in
            switch queue.enqueue([Pending(request: request, continuation: continuation)]) {
            case .refused:
                continuation.resume(throwing: StoreError(.storeUnavailable, "the event store is closed; open it again to append"))
            case .startWriter:
                Task { await self.drain() }
            case .queued:
                break  // a running writer takes it in its next batch
            }
        }
    }

    /// Refuses new appends and waits until every queued one is answered.
    func close() async {
        await queue.close()
        let connections = state.withLock { state in
            state.connectionsTaken = true
            defer { state.idleConnections = [] }
            return state.idleConnections
        }
        for connection in connections { try? await connection.close() }
    }

    /// A writer loop: one transaction per batch while requests are queued. Several loops may run; batches then commit
    /// in the order they take the head row's lock, and a request's positions follow those of every request
    /// answered before it was queued.
    private func drain() async {
        // Each loop appends over its own connection, kept between batches: leasing one from the pool per batch
        // costs more than the append.
        var connection: PostgresConnection? = state.withLock { $0.idleConnections.popLast() }
        while let batch = queue.nextBatch() {
            let started = ContinuousClock.now
            connection = await commit(batch, over: connection)
            // Only with one batch in flight: with several, another loop takes what queues meanwhile.
            if batchesInFlight == 1 {
                let committed = ContinuousClock.now
                let window = min((committed - started) / 2, Self.maximumGatherWindow)
                await queue.gather(until: batch.count + queue.queued, within: window)
                let waited = ContinuousClock.now - committed
                state.withLock { $0.statistics.gatherTime += waited }
            }
        }
        guard let connection else { return }
        // A loop that starts between this one's end and this line opens a connection of its own: keep at most one
        // per loop that may run, close the rest (and every one once `close()` has taken those kept).
        let kept = state.withLock { state in
            guard !state.connectionsTaken, state.idleConnections.count < batchesInFlight else { return false }
            state.idleConnections.append(connection)
            return true
        }
        if !kept { try? await connection.close() }
    }

    /// A new connection for a writer loop.
    private func connect() async throws -> PostgresConnection {
        let id = state.withLock { state in
            defer { state.nextConnectionID += 1 }
            return state.nextConnectionID
        }
        do {
            return try await PostgresConnection.connect(
                configuration: try location.connectionConfiguration(timeout: timeout), id: id, logger: logger
            )
        } catch {
            throw StoreError(
                .storeUnavailable,
                "cannot connect to \(location) to append (\(PostgresErrors.describe(error))); nothing of this append was stored: retry it later"
            )
        }
    }

    /// Commits one batch over `connection` (a new one when `nil`) and answers each of its requests; returns the
    /// connection to use for the next batch (`nil` when this one failed and was closed).
    private func commit(_ batch: [Pending], over connection: PostgresConnection?) async -> PostgresConnection? {
        var connection = connection
        do {
            let current: PostgresConnection
            if let connection, !connection.isClosed {
                current = connection
            } else {
                current = try await connect()
                connection = current
            }
            let (outcomes, head) = try await transaction(batch.map(\.request), current)
            record(batch.count, outcomes)
            signal.publish(Position(head))  // before answering: a returned append is visible to head waiters
            for (pending, outcome) in zip(batch, outcomes) { pending.continuation.resume(with: outcome.result) }
            return current
        } catch where batch.count > 1 && PostgresErrors.sqlState(error) != nil {
            // A server error aborted the transaction: nothing of the batch is stored. Commit its requests one by one
            // so that the error stays with the request that caused it.
            logger.warning("a batch was rolled back; retrying its requests one by one", metadata: ["error": "\(PostgresErrors.describe(error))"])
            state.withLock { $0.statistics.splitBatches += 1 }
            for pending in batch { connection = await commit([pending], over: connection) }
            return connection
        } catch {
            let failure = Self.storeError(error, batch[0].request)
            if failure.code == .storeUnavailable {
                logger.error("an append transaction failed", metadata: ["requests": "\(batch.count)", "error": "\(PostgresErrors.describe(error))"])
            }
            for pending in batch { pending.continuation.resume(throwing: failure) }
            guard PostgresErrors.sqlState(error) == nil, let connection else { return connection }
            // Not an answer from the server: the connection may be broken. Start the next batch on a new one.
            try? await connection.close()
            return nil
        }
    }

    private func record(_ requests: Int, _ outcomes: [Outcome]) {
        state.withLock { state in
            state.statistics.transactions += 1
            state.statistics.requests += requests
            state.statistics.largestBatch = max(state.statistics.largestBatch, requests)
            state.statistics.events += outcomes.reduce(0) { $0 + $1.storedEvents }
        }
    }

    /// One row of `fluxgate_append_v1`.
    private struct Answer: Sendable {
        var outcome: Int32
        var firstPosition: Int64?
        var version: Int64?
    }

    /// What one request of a batch came to.
    private struct Outcome: Sendable {
        var result: Result<AppendResult, any Error>
        var storedEvents: Int
    }

    /// Applies `requests` in order in one transaction, a single call of `fluxgate_append_v1` (one round trip);
    /// returns their outcomes and the new head.
    private func transaction(_ requests: [AppendRequest], _ connection: PostgresConnection) async throws -> ([Outcome], Int64) {
        let logger = self.logger
        var aggregateIDs: [String] = []
        var aggregateNames: [String] = []
        var lowest: [Int64] = []
        var highest: [Int64] = []
        var counts: [Int32] = []
        var eventIDs: [String] = []
        var eventTypes: [String] = []
        var payloads: [ByteBuffer] = []
        var eventRequests: [Int32] = []  // for each event, its request (1-based)
        var eventOffsets: [Int32] = []  // for each event, its place in the request (0-based)
        for (index, request) in requests.enumerated() {
            aggregateIDs.append(request.aggregateID)
            aggregateNames.append(request.aggregateName)
            let bounds: (Int64, Int64) =
                switch request.expectedVersion {
                case .any: (-1, .max)
                case .noStream: (-1, -1)
                case .exact(let version): (version, version)
                }
            lowest.append(bounds.0)
            highest.append(bounds.1)
            counts.append(Int32(request.events.count))
            for (offset, event) in request.events.enumerated() {
                eventRequests.append(Int32(index + 1))
                eventOffsets.append(Int32(offset))
                eventIDs.append(event.eventID)
                eventTypes.append(event.eventType)
                payloads.append(ByteBuffer(bytes: event.payload.bytes))
            }
        }
        let query: PostgresQuery = """
            SELECT outcome, first_position, last_version FROM fluxgate_append_v1(
                \(aggregateIDs), \(aggregateNames), \(lowest), \(highest), \(counts), \(eventIDs), \(eventTypes), \(payloads),
                \(eventRequests), \(eventOffsets), \(clock()))
            """
        // postgres-nio may never answer a query written to a connection that the server has just closed: the
        // timeout ends the wait without waiting for the query (the caller then closes the connection).
        let called = ContinuousClock.now
        defer {
            let elapsed = ContinuousClock.now - called
            state.withLock { $0.statistics.callTime += elapsed }
        }
        let answers = try await withTimeout(timeout, "an append (whether it was stored is unknown: retry it with the same event ids)") {
            var answers: [Answer] = []
            answers.reserveCapacity(requests.count)
            for try await answer in try await connection.query(query, logger: logger).decode((Int32, Int64?, Int64?).self) {
                answers.append(Answer(outcome: answer.0, firstPosition: answer.1, version: answer.2))
            }
            return answers
        }
        guard answers.count == requests.count else {
            throw StoreError(.corrupted, "fluxgate_append_v1 answered \(answers.count) of \(requests.count) requests; the database schema was changed by hand")
        }
        var head: Int64 = 0
        var outcomes: [Outcome] = []
        outcomes.reserveCapacity(requests.count)
        for (request, answer) in zip(requests, answers) {
            let count = Int64(request.events.count)
            switch (answer.outcome, answer.firstPosition, answer.version) {
            case (0, let first?, let version?):
                head = max(head, first + count - 1)
                let result = AppendResult(
                    aggregateID: request.aggregateID, firstPosition: Position(first), lastPosition: Position(first + count - 1), version: version
                )
                outcomes.append(Outcome(result: .success(result), storedEvents: request.events.count))
            case (1, _, let current?):
                let conflict = StoreError.versionConflict(aggregateID: request.aggregateID, expected: request.expectedVersion, current: current)
                outcomes.append(Outcome(result: .failure(conflict), storedEvents: 0))
            case (3, _, _):
                // The stream's aggregate name is not the request's (migration events-v4-append-aggregate-name). A
                // stream keeps its name, so reading it after the commit gives the one the function compared.
                outcomes.append(Outcome(result: .failure(await nameMismatch(of: request)), storedEvents: 0))
            default:
                // An event id is stored already: a retry of a stored append, or a clash. Stored events never change,
                // so reading them after the commit tells which.
                outcomes.append(Outcome(result: await idempotencyOutcome(of: request), storedEvents: 0))
            }
        }
        return (outcomes, head)
    }

    /// The answer to a request some of whose event ids are stored: the stored append's result, or an error.
    private func idempotencyOutcome(of request: AppendRequest) async -> Result<AppendResult, any Error> {
        let ids = request.events.map(\.eventID)
        let logger = self.logger
        do {
            let found = try await client.withConnection { connection in
                try await PostgresEventQueries.events(ids: ids, connection, logger: logger)
            }
            let byID = Dictionary(found.map { ($0.eventID, $0) }, uniquingKeysWith: { first, _ in first })
            switch try request.idempotencyOutcome(stored: ids.map { byID[$0] }) {
            case .alreadyStored(let result): return .success(result)
            case .fresh: return .failure(StoreError(.conflict, "an event id of this append was stored and then not found; retry the append"))
            }
        } catch {
            return .failure(Self.storeError(error, request))
        }
    }

    /// The error for a request whose aggregate name is not its stream's, naming the stored name when it can be read.
    private func nameMismatch(of request: AppendRequest) async -> StoreError {
        let logger = self.logger
        let storedName = try? await client.withConnection { connection in
            try await PostgresEventQueries.aggregateName(of: request.aggregateID, connection, logger: logger)
        }
        return StoreError.nameMismatch(aggregateID: request.aggregateID, storedName: storedName, appendedName: request.aggregateName)
    }

    /// The error a request gets when its transaction failed.
    private static func storeError(_ error: any Error, _ request: AppendRequest) -> StoreError {
        if let error = error as? StoreError { return error }
        if PostgresErrors.sqlState(error) == PostgresErrors.uniqueViolation {
            return StoreError(
                .conflict,
                "stream \(request.aggregateID) or an event id of this append was written concurrently; reload the aggregate and retry"
            )
        }
        return StoreError(
            .storeUnavailable,
            "the PostgreSQL event store could not commit (\(PostgresErrors.describe(error))); whether this append was stored is unknown: retry it with the same event ids (appends are idempotent by event id)"
        )
    }
}

/// Runs `body` and returns its result, or fails with `StoreError.storeUnavailable` after `timeout` without waiting
/// for `body` any longer (it is cancelled and left to finish on its own). Unlike a task group, this returns on time
/// even when `body` ignores cancellation.
func withTimeout<T: Sendable>(_ timeout: Duration, _ what: String, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    let race = TimeoutRace<T>()
    return try await withCheckedThrowingContinuation { continuation in
        race.start(continuation)
        let work = Task {
            do { race.finish(.success(try await body())) } catch { race.finish(.failure(error)) }
        }
        let timer = Task {
            try await Task.sleep(for: timeout)
            if race.finish(.failure(StoreError(.storeUnavailable, "\(what) got no answer from PostgreSQL within \(timeout); check that it is up, then retry"))) {
                work.cancel()
            }
        }
        race.onFinish { timer.cancel() }
    }
}

/// Waits for `task` to end, for at most `limit`; returns whether it ended. A task stuck in a call that ignores
/// cancellation — a query whose connection the pool closed under it may never be answered — is left behind rather
/// than holding its caller (a `close()`, a test, a stopping gateway) for ever.
func awaitEnd(of task: Task<Void, Never>, within limit: Duration) async -> Bool {
    do {
        try await withTimeout(limit, "ending a task") { await task.value }
        return true
    } catch {
        return false
    }
}

/// The continuation of `withTimeout`, resumed once by whichever of the work and the timer finishes first.
private final class TimeoutRace<T: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<T, any Error>?
        var finished = false
        var cleanup: (@Sendable () -> Void)?
    }

    private let state = Mutex(State())

    func start(_ continuation: CheckedContinuation<T, any Error>) {
        state.withLock { $0.continuation = continuation }
    }

    /// Runs `cleanup` once the race is decided (at once if it already is).
    func onFinish(_ cleanup: @escaping @Sendable () -> Void) {
        let decided = state.withLock { state in
            if state.finished { return true }
            state.cleanup = cleanup
            return false
        }
        if decided { cleanup() }
    }

    /// Resumes the continuation with `result` unless it was resumed already; returns whether this call did.
    @discardableResult
    func finish(_ result: Result<T, any Error>) -> Bool {
        let (continuation, cleanup) = state.withLock { state -> (CheckedContinuation<T, any Error>?, (@Sendable () -> Void)?) in
            if state.finished { return (nil, nil) }
            state.finished = true
            defer { state.continuation = nil; state.cleanup = nil }
            return (state.continuation, state.cleanup)
        }
        guard let continuation else { return false }
        continuation.resume(with: result)
        cleanup?()
        return true
    }
}
