import FluxCore

/// What a subscriber asks for (README "Wire protocol" → "Push channel"): where to start, the epoch its offsets
/// belong to, and filters. Shared by the WebSocket and server-sent-events transports.
struct SubscriptionQuery: Sendable {
    var after: Position
    var epoch: StoreEpoch?
    var filter: EventFilter

    /// Parses the query; `Last-Event-ID` (server-sent events) wins over `after`.
    init(_ request: GatewayRequest, lastEventID: String? = nil) throws(BadRequest) {
        var after = Position(try request.integerParameter("after", minimum: 0) ?? 0)
        if let lastEventID {
            guard let value = Int64(lastEventID), value >= 0 else {
                throw BadRequest("Last-Event-ID must be a position (a non-negative integer), got \"\(lastEventID.prefix(40))\"")
            }
            after = Position(value)
        }
        self.after = after
        if let epoch = request.queryValue("epoch") {
            guard !epoch.isEmpty else { throw BadRequest("epoch must not be empty") }
            self.epoch = StoreEpoch(rawValue: epoch)
        }
        filter = EventFilter(
            aggregateNames: Set(request.queryValues("aggregate_name")),
            eventTypes: Set(request.queryValues("event_type")),
            aggregateIDs: Set(request.queryValues("aggregate_id"))
        )
    }

    /// Why a subscriber's offsets cannot be trusted against this store.
    enum Mismatch: Equatable {
        case epoch(given: StoreEpoch, store: StoreEpoch)
        case beyondHead(after: Position, head: Position)

        /// The full explanation, for an HTTP error body.
        var message: String {
            switch self {
            case .epoch(let given, let store):
                "epoch \(given.rawValue.prefix(100)) is not this store's (\(store)): your offsets belong to another store; reset them deliberately"
            case .beyondHead(let after, let head):
                "after=\(after) is beyond the head (\(head)): your offsets belong to another store; reset them deliberately"
            }
        }

        /// The explanation within a Close frame's 123 bytes, whole (the long one would be cut mid-sentence).
        var closeReason: String {
            switch self {
            case .epoch(_, let store): "epoch mismatch: this store's epoch is \(store); your offsets belong to another store"
            case .beyondHead(let after, let head): "after=\(after) is beyond the head (\(head)); your offsets belong to another store"
            }
        }
    }

    /// Why the subscriber's offsets cannot be trusted against this store, or `nil` when they can.
    func mismatch(with store: any EventReader) async throws -> Mismatch? {
        if let epoch, epoch != store.epoch {
            return .epoch(given: epoch, store: store.epoch)
        }
        let head = try await store.head()
        if after > head {
            return .beyondHead(after: after, head: head)
        }
        return nil
    }
}
