/// An event to append: its type name, payload and an optional id used to make retries idempotent.
public struct NewEvent: Hashable, Sendable {
    /// A unique id; retrying an append with the same ids answers as the first append did. When the writer
    /// gives none, a time-ordered UUIDv7 is made (`EventID.make()`).
    public var eventID: String
    /// The stable type name, e.g. `account.AccountCredited`.
    public var eventType: String
    public var payload: EventPayload

    public init(eventID: String? = nil, eventType: String, payload: EventPayload) {
        self.eventID = eventID ?? EventID.make()
        self.eventType = eventType
        self.payload = payload
    }
}

/// One atomic append to one stream (aggregate).
public struct AppendRequest: Hashable, Sendable {
    public var aggregateID: String
    public var aggregateName: String
    public var expectedVersion: ExpectedVersion
    public var events: [NewEvent]

    public init(aggregateID: String, aggregateName: String, expectedVersion: ExpectedVersion, events: [NewEvent]) {
        self.aggregateID = aggregateID
        self.aggregateName = aggregateName
        self.expectedVersion = expectedVersion
        self.events = events
    }

    /// The longest aggregate id accepted, in UTF-8 bytes.
    public static let maximumAggregateIDLength = 256

    /// Checks what every store requires of a request before it touches storage.
    public func validate() throws(StoreError) {
        if aggregateID.isEmpty {
            throw StoreError(.invalidAppend, "aggregate_id must not be empty")
        }
        if aggregateID.utf8.count > Self.maximumAggregateIDLength {
            throw StoreError(.invalidAppend, "aggregate_id is \(aggregateID.utf8.count) bytes; the limit is \(Self.maximumAggregateIDLength)")
        }
        if aggregateName.isEmpty {
            throw StoreError(.invalidAppend, "aggregate_name must not be empty")
        }
        if events.isEmpty {
            throw StoreError(.invalidAppend, "an append needs at least one event")
        }
        var seen = Set<String>()
        for event in events {
            if event.eventType.isEmpty {
                throw StoreError(.invalidAppend, "event_type must not be empty")
            }
            if event.eventID.isEmpty {
                throw StoreError(.invalidAppend, "event_id must not be empty")
            }
            if !seen.insert(event.eventID).inserted {
                throw StoreError(.invalidAppend, "event_id \(event.eventID) appears twice in one append")
            }
        }
    }
}

/// What a successful append stored.
public struct AppendResult: Hashable, Sendable {
    public var aggregateID: String
    /// The position of the first event stored by this append.
    public var firstPosition: Position
    /// The position of the last event stored by this append.
    public var lastPosition: Position
    /// The stream's version after the append (the version of its last event).
    public var version: Int64

    public init(aggregateID: String, firstPosition: Position, lastPosition: Position, version: Int64) {
        self.aggregateID = aggregateID
        self.firstPosition = firstPosition
        self.lastPosition = lastPosition
        self.version = version
    }
}
