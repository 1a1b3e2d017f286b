/// A consumer's saved place in the feed: the last position it handled, under the store epoch it read from.
public struct Checkpoint: Hashable, Sendable, Codable {
    public var position: Position
    public var epoch: StoreEpoch

    public init(position: Position, epoch: StoreEpoch) {
        self.position = position
        self.epoch = epoch
    }
}

/// Stores consumers' checkpoints (offsets), one per consumer name.
public protocol CheckpointStore: Sendable {
    /// The checkpoint saved for `consumer`, or `nil` when it has none.
    func load(consumer: String) async throws -> Checkpoint?
    /// Saves (replaces) the checkpoint of `consumer`.
    func save(_ checkpoint: Checkpoint, consumer: String) async throws
}
