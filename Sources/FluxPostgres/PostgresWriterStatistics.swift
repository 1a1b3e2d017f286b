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
    /// Time spent waiting for the answers of append calls (the round trip: the server's work, its WAL flush, the
    /// network and the client's encoding and decoding), summed over transactions.
    public var callTime: Duration = .zero
    /// Time the writer spent gathering its next batch after a commit (see `PostgresGroupCommitter`), summed.
    public var gatherTime: Duration = .zero

    /// All counters at zero.
    public init() {}

    public var description: String {
        let perTransaction = { (total: Duration) -> String in
            let microseconds = (total.components.seconds * 1_000_000 + total.components.attoseconds / 1_000_000_000_000) / Int64(max(transactions, 1))
            return "\(microseconds) µs"
        }
        return "\(transactions) transactions for \(requests) requests (\(events) events, largest batch \(largestBatch), \(splitBatches) batches split; per transaction: call \(perTransaction(callTime)), gather \(perTransaction(gatherTime)))"
    }
}
