/// Counters of a PostgreSQL event store's writer (this node only) since the store was opened.
public struct PostgresWriterStatistics: Hashable, Sendable, CustomStringConvertible {
    /// Transactions committed (one per batch, or one per request when a batch was retried request by request).
    public var transactions: Int = 0
    /// Append requests answered, successful or not (conflicts, duplicates, idempotent retries).
    public var requests: Int = 0
    /// Events stored.
    public var events: Int = 0
    /// The most requests committed in one transaction.
    public var largestBatch: Int = 0
    /// Batches rolled back by a server error and retried request by request.
    public var splitBatches: Int = 0

    /// All counters at zero.
    public init() {}

    public var description: String {
        "\(transactions) transactions for \(requests) requests (\(events) events, largest batch \(largestBatch), \(splitBatches) batches split)"
    }
}
