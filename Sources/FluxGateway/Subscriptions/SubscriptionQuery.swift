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

    /// Why the subscriber's offsets cannot be trusted against this store, or `nil` when they can.
    func mismatch(with store: any EventReader) async throws -> String? {
        if let epoch, epoch != store.epoch {
            return "epoch \(epoch) is not this store's (\(store.epoch)): your offsets belong to another store; reset them deliberately"
        }
        let head = try await store.head()
        if after > head {
            return "after=\(after) is beyond the head (\(head)): your offsets belong to another store; reset them deliberately"
        }
        return nil
    }
}
