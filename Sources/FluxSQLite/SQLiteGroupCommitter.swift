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
    private struct Pending {
        var request: AppendRequest
        /// Called once, by the writer, with the request's result.
        var complete: @Sendable (Result<AppendResult, any Error>) -> Void
    }

    private struct State {
        var queue: [Pending] = []
        var writing = false
        var closed = false
        /// While the writer gathers a batch: the number of queued requests that wakes it before its window ends.
        var gatherTarget: Int?
        var drainWaiters: [CheckedContinuation<Void, Never>] = []
        var statistics = SQLiteWriterStatistics()
    }

    /// The most requests committed in one transaction: bounds a transaction's duration and memory.
    static let maximumBatch = 1024
    /// The longest the writer waits for the requests it expects in the next batch (see `gather`).
    static let maximumGatherWindow = Duration.milliseconds(1)

    private let pool: DatabasePool
    private let signal: HeadSignal
    private let clock: @Sendable () -> Int64
    private let logger: Logger
    private let state = Mutex(State())
    /// Signalled when the queue reaches `gatherTarget`.
    private let gathered = DispatchSemaphore(value: 0)

    init(pool: DatabasePool, signal: HeadSignal, clock: @escaping @Sendable () -> Int64, logger: Logger) {
        self.pool = pool
        self.signal = signal
        self.clock = clock
        self.logger = logger
    }

    var statistics: SQLiteWriterStatistics { state.withLock { $0.statistics } }

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
        enum Action { case refuse, startWriter, wakeWriter, none }
        let action: Action = state.withLock { state in
            if state.closed { return .refuse }
            state.queue += pendings
            if let target = state.gatherTarget, state.queue.count >= target {
                state.gatherTarget = nil
                return .wakeWriter
            }
            if state.writing { return .none }
            state.writing = true
            return .startWriter
        }
        switch action {
        case .refuse:
            let error = StoreError(.storeUnavailable, "the event store is closed; open it again to append")
            for pending in pendings { pending.complete(.failure(error)) }
        case .startWriter:
            pool.asyncWriteWithoutTransaction { db in self.drain(db) }
        case .wakeWriter:
            gathered.signal()
        case .none:
            break  // the running writer takes them in its next batch
        }
    }

    /// Refuses new appends and waits until every queued one is committed.
    func close() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let idle: Bool = state.withLock { state in
                state.closed = true
                if !state.writing { return true }
                state.drainWaiters.append(continuation)
                return false
            }
            if idle { continuation.resume() }
        }
    }

    /// The writer loop, on GRDB's writer queue (a dispatch queue, not the Swift concurrency pool, so syncing to
    /// disk blocks no task): runs while requests are queued, one transaction per batch.
    private func drain(_ db: Database) {
        var expected = 0
        var window = Duration.zero
        while true {
            gather(expected, within: window)
            let batch: [Pending] = state.withLock { state in
                if state.queue.count <= Self.maximumBatch {
                    defer { state.queue = [] }
                    return state.queue
                }
                let batch = Array(state.queue.prefix(Self.maximumBatch))
                state.queue.removeFirst(Self.maximumBatch)
                return batch
            }
            if !batch.isEmpty {
                let started = ContinuousClock.now
                let results = commit(batch, db)
                window = min((ContinuousClock.now - started) / 2, Self.maximumGatherWindow)
                // The requests queued during the transaction, and as many again once their appenders have their answers.
                expected = state.withLock { min($0.queue.count + batch.count, Self.maximumBatch) }
                for (pending, result) in zip(batch, results) { pending.complete(result) }
                continue
            }
            let waiters: [CheckedContinuation<Void, Never>]? = state.withLock { state in
                // Appends queued since the batch was taken are picked up by looping again.
                guard state.queue.isEmpty else { return nil }
                state.writing = false
                defer { state.drainWaiters = [] }
                return state.drainWaiters
            }
            guard let waiters else { continue }
            for waiter in waiters { waiter.resume() }
            return
        }
    }

    /// Waits until `count` requests are queued, for at most `window`, before the writer takes a batch.
    ///
    /// Appenders answered by a batch often append again at once (a command handler, a client with requests in
    /// flight): taking the next batch before they are back would commit a few requests alone and leave the
    /// others to wait for a whole further transaction, whose sync to disk costs the same for one request as for
    /// many. So the writer waits for as many requests as the last batch answered plus those queued meanwhile,
    /// but never longer than half the last transaction took (at most `maximumGatherWindow`): requests already
    /// queued are delayed by less than the transaction they would otherwise wait for (the trade-off of
    /// PostgreSQL's `commit_delay`).
    private func gather(_ count: Int, within window: Duration) {
        let waiting = state.withLock { state in
            guard state.queue.count < count, !state.closed else { return false }
            state.gatherTarget = count
            return true
        }
        guard waiting else { return }
        guard gathered.wait(timeout: .now() + .nanoseconds(Int(window / .nanoseconds(1)))) == .timedOut else { return }
        let signalled = state.withLock { state in
            // An enqueue that reached the target as the window ended has signalled, or is about to: take its signal.
            if state.gatherTarget == nil { return true }
            state.gatherTarget = nil
            state.statistics.expiredGatherWindows += 1
            return false
        }
        if signalled { gathered.wait() }
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
            state.withLock { $0.statistics.failedTransactions += 1 }
            logger.error("event store transaction failed", metadata: ["requests": "\(batch.count)", "error": "\(SQLiteFile.describe(error))"])
            let failure = StoreError(
                .storeUnavailable,
                "the event store could not commit (\(SQLiteFile.describe(error))); nothing of this append was stored: retry it later"
            )
            return batch.map { _ in .failure(failure) }
        }
        guard let (outcomes, head) = applied else { preconditionFailure("a committed transaction always has outcomes") }
        let writeTime = ContinuousClock.now - started
        state.withLock { state in
            state.statistics.transactions += 1
            state.statistics.applyTime += applyTime
            state.statistics.writeTime += writeTime
            state.statistics.requests += batch.count
            state.statistics.largestBatch = max(state.statistics.largestBatch, batch.count)
            state.statistics.events += outcomes.reduce(0) { $0 + $1.storedEvents }
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
