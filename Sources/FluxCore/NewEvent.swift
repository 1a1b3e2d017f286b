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

    /// The longest aggregate id accepted, in UTF-8 bytes (the limit of every id and name, `EventKey.maximumLength`).
    public static let maximumAggregateIDLength = EventKey.maximumLength

    /// Checks what every store requires of a request before it touches storage.
    ///
    /// `aggregate_id`, `aggregate_name`, and each event's `event_type` and `event_id` must be non-empty, at most
    /// 256 UTF-8 bytes, and printable: a C0 control character (U+0000–U+001F) or DEL (U+007F) is refused, the
    /// message naming the field and the character's byte offset, e.g. `aggregate_id contains a control character
    /// (U+0000 at byte 5); ids and names must be printable`. A NUL, from `%00` in a URL path or `\u0000` in JSON,
    /// would otherwise make another stream's id on SQLite, which cuts text at a NUL (see `EventKey`). Event ids
    /// must also differ within the request.
    ///
    /// - Throws: `StoreError.invalidAppend`, which the gateway answers with `400`.
    public func validate() throws(StoreError) {
        try Self.check(aggregateID, "aggregate_id")
        try Self.check(aggregateName, "aggregate_name")
        if events.isEmpty {
            throw StoreError(.invalidAppend, "an append needs at least one event")
        }
        var seen = Set<String>()
        for (index, event) in events.enumerated() {
            try Self.check(event.eventType, "events[\(index)].event_type")
            try Self.check(event.eventID, "events[\(index)].event_id")
            if !seen.insert(event.eventID).inserted {
                throw StoreError(.invalidAppend, "event_id \(event.eventID) appears twice in one append")
            }
        }
    }

    /// Checks one id or name against `EventKey`'s rule; `field` names it in the message.
    private static func check(_ text: String, _ field: @autoclosure () -> String) throws(StoreError) {
        if text.isEmpty {
            throw StoreError(.invalidAppend, "\(field()) must not be empty")
        }
        let length = text.utf8.count
        if length > EventKey.maximumLength {
            throw StoreError(.invalidAppend, "\(field()) is \(length) bytes; the limit is \(EventKey.maximumLength)")
        }
        if let (value, offset) = EventKey.firstControlCharacter(in: text) {
            let code = String(value, radix: 16, uppercase: true)
            throw StoreError(
                .invalidAppend,
                "\(field()) contains a control character (U+\(String(repeating: "0", count: 4 - code.count) + code) at byte \(offset)); ids and names must be printable"
            )
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
    /// This result answers a retry of an append stored before (same event ids and content): nothing new was stored.
    /// Not part of equality: a retry answers *the same* result as the first append.
    public var isReplay: Bool

    public init(aggregateID: String, firstPosition: Position, lastPosition: Position, version: Int64, isReplay: Bool = false) {
        self.aggregateID = aggregateID
        self.firstPosition = firstPosition
        self.lastPosition = lastPosition
        self.version = version
        self.isReplay = isReplay
    }

    public static func == (lhs: AppendResult, rhs: AppendResult) -> Bool {
        lhs.aggregateID == rhs.aggregateID && lhs.firstPosition == rhs.firstPosition && lhs.lastPosition == rhs.lastPosition
            && lhs.version == rhs.version
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(aggregateID)
        hasher.combine(firstPosition)
        hasher.combine(lastPosition)
        hasher.combine(version)
    }
}
