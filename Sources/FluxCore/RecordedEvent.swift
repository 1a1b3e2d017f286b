/// An event as stored: the envelope fields and the payload.
public struct RecordedEvent: Hashable, Sendable {
    public var eventID: String
    public var position: Position
    public var aggregateID: String
    public var aggregateName: String
    /// The event's version within its stream: 0 for the first event of the aggregate.
    public var version: Int64
    public var eventType: String
    /// When the store recorded it, milliseconds since 1970-01-01T00:00:00Z.
    public var recordedAtMilliseconds: Int64
    public var payload: EventPayload

    public init(
        eventID: String, position: Position, aggregateID: String, aggregateName: String, version: Int64,
        eventType: String, recordedAtMilliseconds: Int64, payload: EventPayload
    ) {
        self.eventID = eventID
        self.position = position
        self.aggregateID = aggregateID
        self.aggregateName = aggregateName
        self.version = version
        self.eventType = eventType
        self.recordedAtMilliseconds = recordedAtMilliseconds
        self.payload = payload
    }
}
