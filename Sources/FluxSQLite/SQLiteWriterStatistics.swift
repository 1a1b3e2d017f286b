/// Counters of an SQLite event store's writer since the store was opened: how well group commit batches.
public struct SQLiteWriterStatistics: Hashable, Sendable, CustomStringConvertible {
    /// Write transactions committed (one per batch).
    public var transactions: Int = 0
    /// Append requests answered by committed transactions, successful or not (conflicts, duplicates, retries).
    public var requests: Int = 0
    /// Events stored.
    public var events: Int = 0
    /// The most requests committed in one transaction.
    public var largestBatch: Int = 0
    /// Transactions that failed as a whole (every request of the batch got `StoreError.storeUnavailable`).
    public var failedTransactions: Int = 0
    /// Times the writer, gathering the requests it expected in the next batch, took the batch when its window
    /// ended with fewer queued.
    public var expiredGatherWindows: Int = 0

    /// Time spent applying batches inside their transactions (lookups, savepoints, inserts), before COMMIT.
    public var applyTime: Duration = .zero
    /// Time spent in write transactions from the request for the writer connection to the end of COMMIT
    /// (including the sync to disk).
    public var writeTime: Duration = .zero

    /// All counters at zero.
    public init() {}

    public var description: String {
        "\(transactions) transactions for \(requests) requests (\(events) events, largest batch \(largestBatch), \(failedTransactions) failed, \(expiredGatherWindows) gather windows expired; \(applyTime) applying, \(writeTime) in transactions)"
    }
}
