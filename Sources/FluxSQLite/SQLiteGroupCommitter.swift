import FluxCore
import Foundation
import GRDB
import Logging
import Synchronization

/// The single writer of an SQLite event store: queues concurrent appends and commits everything queued in
/// one transaction (group commit), so one `fsync` serves many appenders. Between batches the writer waits a
/// moment for the appenders it has just answered to come back (see `gather`), so that they share the next sync.
///
/// Per-request atomicity is that of one transaction per request: a request's checks write nothing and its
/// inserts run in their own SAVEPOINT (a single INSERT is atomic by itself), so a request that fails (conflict,
/// aggregate name mismatch, duplicate event id, constraint) rolls back exactly its own rows and gets its own error
/// while the others of the batch commit. Requests are applied in queue order, each
/// seeing the effects of those before it, exactly as if they had been committed one by one in that order.
///
/// Positions are assigned here, by the only writer, as the committed head + 1, inside the write transaction:
/// a rolled-back savepoint does not advance them and a failed transaction leaves none behind, so positions are
/// dense; a transaction's positions are all above every committed one and become visible at its commit, so
/// commit order is position order.
final class SQLiteGroupCommitter: Sendable {
    private struct Pending: Sendable {
        var request: AppendRequest
        /// Called once, by the writer, with the request's result.
        var complete: @Sendable (Result<AppendResult, any Error>) -> Void
    }

    /// The most requests committed in one transaction: bounds a transaction's duration and memory.
    static let maximumBatch = 1024
    /// The longest the writer waits for the requests it expects in the next batch (see `GroupCommitQueue.gather`).
    static let maximumGatherWindow = Duration.milliseconds(1)

    private let pool: DatabasePool
    private let signal: HeadSignal
    private let clock: @Sendable () -> Int64
    private let logger: Logger
    /// One writer loop at most: SQLite has one writer.
    private let queue = GroupCommitQueue<Pending>(maximumBatch: SQLiteGroupCommitter.maximumBatch, maximumWriters: 1)
    private let counters = Mutex(SQLiteWriterStatistics())

    init(pool: DatabasePool, signal: HeadSignal, clock: @escaping @Sendable () -> Int64, logger: Logger) {
        self.pool = pool
        self.signal = signal
        self.clock = clock
        self.logger = logger
    }

    var statistics: SQLiteWriterStatistics {
        var statistics = counters.withLock { $0 }
        statistics.expiredGatherWindows = queue.expiredGatherWindows
        return statistics
    }

    /// Queues a validated request and waits for the commit of the batch that carries it.
    ///
    /// Once queued, a request is committed or failed by the writer; cancelling the caller does not withdraw it.
    func append(_ request: AppendRequest) async throws -> AppendResult {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<AppendResult, any Error>) in
            enqueue([Pending(request: request, complete: { continuation.resume(with: $0) })])
        }
    }

    /// Queues validated requests together, so that they are committed in the same transaction (in this order)
    /// unless there are more than `maximumBatch` of them; returns each one's result.
    func appendTogether(_ requests: [AppendRequest]) async -> [Result<AppendResult, any Error>] {
        guard !requests.isEmpty else { return [] }
        return await withCheckedContinuation { (continuation: CheckedContinuation<[Result<AppendResult, any Error>], Never>) in
            let collector = ResultCollector(count: requests.count, continuation: continuation)
            enqueue(requests.enumerated().map { index, request in
                Pending(request: request, complete: { collector.set(index, $0) })
            })
        }
    }

    private func enqueue(_ pendings: [Pending]) {
        switch queue.enqueue(pendings) {
        case .refused:
            let error = StoreError(.storeUnavailable, "the event store is closed; open it again to append")
            for pending in pendings { pending.complete(.failure(error)) }
        case .startWriter:
            pool.asyncWriteWithoutTransaction { db in self.drain(db) }
        case .queued:
            break  // the running writer takes them in its next batch
        }
    }

    /// Refuses new appends and waits until every queued one is committed.
    func close() async {
        await queue.close()
    }

    /// The writer loop, on GRDB's writer queue (a dispatch queue, not the Swift concurrency pool, so syncing to
    /// disk blocks no task): runs while requests are queued, one transaction per batch.
    private func drain(_ db: Database) {
        var expected = 0
        var window = Duration.zero
        while true {
            queue.gatherBlocking(until: expected, within: window)
            guard let batch = queue.nextBatch() else { return }
            let started = ContinuousClock.now
            let results = commit(batch, db)
            window = min((ContinuousClock.now - started) / 2, Self.maximumGatherWindow)
            // The requests queued during the transaction, and as many again once their appenders have their answers.
            expected = queue.queued + batch.count
            for (pending, result) in zip(batch, results) { pending.complete(result) }
        }
    }

    /// Commits one batch in one transaction and publishes the new head; returns each request's result.
    private func commit(_ batch: [Pending], _ db: Database) -> [Result<AppendResult, any Error>] {
        let requests = batch.map(\.request)
        let recordedAt = clock()
        let started = ContinuousClock.now
        var applied: (outcomes: [Outcome], head: Int64)?
        var applyTime = Duration.zero
        do {
            try db.inTransaction(.immediate) {
                applied = try Self.apply(requests, recordedAt: recordedAt, db)
                applyTime = ContinuousClock.now - started
                return .commit
            }
        } catch {
            counters.withLock { $0.failedTransactions += 1 }
            logger.error("event store transaction failed", metadata: ["requests": "\(batch.count)", "error": "\(SQLiteFile.describe(error))"])
            let failure = StoreError(
                .storeUnavailable,
                "the event store could not commit (\(SQLiteFile.describe(error))); nothing of this append was stored: retry it later"
            )
            return batch.map { _ in .failure(failure) }
        }
        guard let (outcomes, head) = applied else { preconditionFailure("a committed transaction always has outcomes") }
        let writeTime = ContinuousClock.now - started
        counters.withLock { statistics in
            statistics.transactions += 1
            statistics.applyTime += applyTime
            statistics.writeTime += writeTime
            statistics.requests += batch.count
            statistics.largestBatch = max(statistics.largestBatch, batch.count)
            statistics.events += outcomes.reduce(0) { $0 + $1.storedEvents }
        }
        // Published before the answers: when an append returns, waiters on the head already see its events.
        signal.publish(Position(head))
        return outcomes.map(\.result)
    }

    /// What one request of a batch came to.
    private struct Outcome: Sendable {
        var result: Result<AppendResult, any Error>
        /// Events this request inserted (0 for a failure or an idempotent retry).
        var storedEvents: Int
    }

    /// Applies the requests in order; returns their outcomes and the new head.
    ///
    /// A `StoreError` (conflict, aggregate name mismatch, duplicate event id) or a constraint violation fails only its
    /// request; any other error (I/O, disk full) is thrown and fails the whole transaction.
    private static func apply(_ requests: [AppendRequest], recordedAt: Int64, _ db: Database) throws -> ([Outcome], Int64) {
        var head = try SQLiteEventQueries.head(db)
        let statements = try SQLiteAppendStatements(db)
        var outcomes: [Outcome] = []
        outcomes.reserveCapacity(requests.count)
        for request in requests {
            do {
                let (result, inserted) = try appendOne(request, head: head, recordedAt: recordedAt, statements, db)
                head += Int64(inserted)
                outcomes.append(Outcome(result: .success(result), storedEvents: inserted))
            } catch let error as StoreError {
                outcomes.append(Outcome(result: .failure(error), storedEvents: 0))
            } catch let error as DatabaseError where error.resultCode == .SQLITE_CONSTRAINT && db.isInsideTransaction {
                outcomes.append(Outcome(result: .failure(constraintError(error, request)), storedEvents: 0))
            }
            // Some failures make SQLite roll back the whole transaction (RAISE(ROLLBACK), I/O errors): the
            // requests after them must not run outside it, so the whole batch fails.
            guard db.isInsideTransaction else {
                throw StoreError(.storeUnavailable, "SQLite rolled back the transaction of the batch")
            }
        }
        return (outcomes, head)
    }

    /// Appends one request after `head`; returns its result and how many events it inserted.
    ///
    /// The checks (idempotency, aggregate name, expected version) write nothing, so a request they reject leaves
    /// nothing to undo.
    /// The ids of a new append are not stored: one index seek per event tells, and only a retry or a clash reads
    /// the stored events. The inserts of a multi-event request run in a SAVEPOINT, rolled back if one fails; a
    /// single INSERT needs none: SQLite undoes a failed statement by itself and keeps the transaction (errors
    /// that abort the whole transaction are not constraint errors, and fail the whole batch).
    private static func appendOne(
        _ request: AppendRequest, head: Int64, recordedAt: Int64, _ statements: SQLiteAppendStatements, _ db: Database
    ) throws -> (AppendResult, Int) {
        if try request.events.contains(where: { try statements.isStored(eventID: $0.eventID) }) {
            let stored = try request.events.map { try SQLiteEventQueries.event(id: $0.eventID, db) }
            if case .alreadyStored(let result) = try request.idempotencyOutcome(stored: stored) {
                return (result, 0)
            }
        }
        let (current, otherName) = try statements.stream(request.aggregateID, appendedAs: request.aggregateName)
        if let otherName {
            throw StoreError.nameMismatch(aggregateID: request.aggregateID, storedName: otherName, appendedName: request.aggregateName)
        }
        guard request.expectedVersion.isSatisfied(byCurrentVersion: current) else {
            throw StoreError.versionConflict(aggregateID: request.aggregateID, expected: request.expectedVersion, current: current)
        }
        func insertAll() throws {
            for (offset, event) in request.events.enumerated() {
                let offset = Int64(offset)
                try statements.insert(
                    position: head + 1 + offset, event: event, aggregateID: request.aggregateID, aggregateName: request.aggregateName,
                    version: current + 1 + offset, recordedAt: recordedAt
                )
            }
        }
        if request.events.count == 1 {
            try insertAll()
        } else {
            try db.inSavepoint {
                try insertAll()
                return .commit
            }
        }
        let count = Int64(request.events.count)
        let result = AppendResult(
            aggregateID: request.aggregateID, firstPosition: Position(head + 1), lastPosition: Position(head + count),
            version: current + count
        )
        return (result, request.events.count)
    }

    /// A constraint violation the checks before the insert did not foresee (another process wrote the file).
    private static func constraintError(_ error: DatabaseError, _ request: AppendRequest) -> StoreError {
        if error.message?.contains("event_id") == true {
            return StoreError(.duplicateEventID, "an event id of this append is already stored; use new event ids for a new append")
        }
        return StoreError(
            .conflict,
            "stream \(request.aggregateID) changed while appending (another writer on the same file); reload the aggregate and retry"
        )
    }
}

/// Gathers the results of requests queued together and hands them over once all are in.
private final class ResultCollector: Sendable {
    private struct State {
        var results: [Result<AppendResult, any Error>?]
        var remaining: Int
    }

    private let state: Mutex<State>
    private let continuation: CheckedContinuation<[Result<AppendResult, any Error>], Never>

    init(count: Int, continuation: CheckedContinuation<[Result<AppendResult, any Error>], Never>) {
        state = Mutex(State(results: Array(repeating: nil, count: count), remaining: count))
        self.continuation = continuation
    }

    func set(_ index: Int, _ result: Result<AppendResult, any Error>) {
        let complete: [Result<AppendResult, any Error>]? = state.withLock { state in
            state.results[index] = result
            state.remaining -= 1
            return state.remaining == 0 ? state.results.map { $0! } : nil
        }
        if let complete { continuation.resume(returning: complete) }
    }
}
