/// Reads events from a store.
public protocol EventReader: Sendable {
    /// The store's identity; offsets read from one epoch mean nothing against another.
    var epoch: StoreEpoch { get }

    /// The position of the last stored event (`Position.start` when the store is empty).
    func head() async throws -> Position

    /// Events after `position`, in position order, that match `filter`; at most `limit` of them.
    func read(after position: Position, limit: Int, filter: EventFilter) async throws -> [RecordedEvent]

    /// One stream's events from `fromVersion` on, in version order; at most `limit` of them.
    func readStream(_ aggregateID: String, fromVersion: Int64, limit: Int) async throws -> [RecordedEvent]

    /// The event with this id, if stored.
    func event(id: String) async throws -> RecordedEvent?

    /// The streams whose aggregate id starts with `prefix` (byte for byte; `""` for every stream), in the byte order
    /// of their ids' UTF-8 form (`StreamListing`), after the id `cursor` (`nil`: from the first), at most `limit` of
    /// them; only those whose aggregate name is in `aggregateNames` when that set is not empty. A page is the next
    /// page's cursor by its last id (keyset paging: streams created meanwhile are listed where they sort, none is
    /// listed twice). A prefix, cursor or name with a control character matches nothing (`EventKey`).
    ///
    /// Stores seek from stream to stream on their `(aggregate_id, version)` index: a page costs about `limit` index
    /// seeks, whatever the streams' lengths; with `aggregateNames`, streams of other names are passed over too.
    func streams(after cursor: String?, prefix: String, aggregateNames: Set<String>, limit: Int) async throws -> [StreamSummary]

    /// Returns the head once it is beyond `position`, or the current head when `timeout` passes first.
    /// Cancellation ends the wait early.
    func waitForHead(beyond position: Position, timeout: Duration) async throws -> Position
}

/// Appends events to a store.
public protocol EventWriter: Sendable {
    /// Stores the request's events atomically, with consecutive versions and consecutive positions, or
    /// throws: `StoreError.conflict` when the stream's version is not the expected one (nothing is stored),
    /// `StoreError.aggregateNameMismatch` when the stream's events have another aggregate name (a stream belongs
    /// to one aggregate name for life; checked before the version, nothing is stored),
    /// `StoreError.duplicateEventID` when an event id is already stored elsewhere, `StoreError.invalidAppend`
    /// for a malformed request. Retrying a stored append (same event ids, same content) returns the original
    /// result; the same ids with other content are a `StoreError.duplicateEventID` (see `idempotencyOutcome`).
    @discardableResult
    func append(_ request: AppendRequest) async throws -> AppendResult
}

/// A store that can both read and append.
public typealias EventStore = EventReader & EventWriter

extension EventReader {
    /// Events after `position` with no filter.
    public func read(after position: Position, limit: Int) async throws -> [RecordedEvent] {
        try await read(after: position, limit: limit, filter: .all)
    }

    /// The streams whose aggregate id starts with `prefix`, whatever their aggregate name.
    public func streams(after cursor: String?, prefix: String = "", limit: Int) async throws -> [StreamSummary] {
        try await streams(after: cursor, prefix: prefix, aggregateNames: [], limit: limit)
    }
}

/// What the stored copies of a request's event ids say about it.
public enum IdempotencyOutcome: Hashable, Sendable {
    /// None of the ids is stored: append normally.
    case fresh
    /// The same append was stored before: answer with its result.
    case alreadyStored(AppendResult)
}

extension AppendRequest {
    /// Decides whether this request is new, a retry of a stored append, or a clash with other events.
    ///
    /// `stored` holds, for each event of the request in order, the stored event with that id (or `nil`). A retry
    /// finds every id stored, in this stream, at consecutive positions, with the same content: event type,
    /// aggregate name and payload bytes (stores keep payloads byte for byte, so a payload re-encoded with other
    /// spacing is other content). Anything else is `StoreError.duplicateEventID`: answering it with the stored
    /// append's result would drop the new content silently. The aggregate name is compared here, so a retry under
    /// another name is a duplicate event id, not an aggregate name mismatch: the ids are what clash.
    public func idempotencyOutcome(stored: [RecordedEvent?]) throws(StoreError) -> IdempotencyOutcome {
        precondition(stored.count == events.count)
        if stored.allSatisfy({ $0 == nil }) { return .fresh }
        let found = stored.compactMap { $0 }
        let isSamePlace = found.count == events.count
            && found.allSatisfy { $0.aggregateID.utf8.elementsEqual(aggregateID.utf8) }
            && zip(found, found.dropFirst()).allSatisfy { $1.version == $0.version + 1 && $1.position == $0.position.next }
        guard isSamePlace, let first = found.first, let last = found.last else {
            let clash = found.first?.eventID ?? ""
            throw StoreError(
                .duplicateEventID,
                "event_id \(clash) is already stored with other events (stream \(found.first?.aggregateID ?? "?")); use new event ids for a new append"
            )
        }
        for (storedEvent, event) in zip(found, events) {
            var differing: [String] = []
            if !storedEvent.eventType.utf8.elementsEqual(event.eventType.utf8) { differing.append("event_type") }
            if !storedEvent.aggregateName.utf8.elementsEqual(aggregateName.utf8) { differing.append("aggregate_name") }
            if storedEvent.payload.bytes != event.payload.bytes { differing.append("payload") }
            if !differing.isEmpty {
                throw StoreError(
                    .duplicateEventID,
                    "event_id \(event.eventID) is already stored with other content (\(differing.joined(separator: " and ")) \(differing.count == 1 ? "differs" : "differ")); a retry must resend the same events, a new append needs new event ids"
                )
            }
        }
        return .alreadyStored(
            AppendResult(
                aggregateID: aggregateID, firstPosition: first.position, lastPosition: last.position, version: last.version, isReplay: true
            )
        )
    }
}
