import FluxCore
import NIOCore

/// One page of the extended JSON feed (`GET /events?after=…`), decoded.
public struct FeedPage: Sendable {
    public var events: [RecordedEvent]
    /// The store's head when the page was read.
    public var head: Position
    public var epoch: StoreEpoch
    /// The URL of the next page.
    public var next: String

    /// Why a feed answer could not be decoded.
    public struct DecodingError: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    /// Decodes a page; payloads keep the bytes the server sent.
    public init(json body: ByteBuffer) throws {
        let bytes = Array(body.readableBytesView)
        let document = try JSONParser.parse(bytes)
        func fail(_ message: String) -> DecodingError { DecodingError(description: "bad feed page: \(message)") }
        guard let eventValues = document["events"]?.arrayValue else { throw fail("events is missing") }
        guard let head = document["head"]?.int64Value else { throw fail("head is missing") }
        guard let epoch = document["epoch"]?.stringValue else { throw fail("epoch is missing") }
        self.head = Position(head)
        self.epoch = StoreEpoch(rawValue: epoch)
        self.next = document["next"]?.stringValue ?? ""
        self.events = try eventValues.map { value in
            guard let event = RecordedEvent(envelope: value, in: bytes) else { throw fail("an envelope lacks a field") }
            return event
        }
    }
}

extension RecordedEvent {
    /// Decodes a feed or push-channel envelope; the payload keeps the bytes of `document`.
    init?(envelope value: JSONValue, in document: [UInt8]) {
        guard let id = value["event_id"]?.stringValue, let position = value["position"]?.int64Value,
            let aggregateID = value["aggregate_id"]?.stringValue, let aggregateName = value["aggregate_name"]?.stringValue,
            let version = value["aggregate_version"]?.int64Value, let eventType = value["event_type"]?.stringValue,
            let recordedAt = value["recorded_at"]?.stringValue.flatMap(Timestamp.parseRFC3339)
        else { return nil }
        let payload = value["payload"].map { EventPayload(trustedJSON: Array(document[$0.range])) } ?? .null
        self.init(
            eventID: id, position: Position(position), aggregateID: aggregateID, aggregateName: aggregateName,
            version: version, eventType: eventType, recordedAtMilliseconds: recordedAt, payload: payload
        )
    }
}
