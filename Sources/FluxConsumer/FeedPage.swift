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
    /// The fields of an envelope with payload, in the order the gateway writes them (README "Wire protocol" → "Events and positions").
    private enum EnvelopeField: Int {
        case eventID, url, aggregateName, aggregateVersion, eventType, created, aggregateID, position, recordedAt, payload

        static let keys = [
            "event_id", "url", "aggregate_name", "aggregate_version", "event_type", "created", "aggregate_id", "position",
            "recorded_at", "payload",
        ]

        var key: String { Self.keys[rawValue] }
    }

    /// Decodes a feed or push-channel envelope; the payload keeps the bytes of `document`.
    init?(envelope value: JSONValue, in document: [UInt8]) {
        // An envelope with exactly the gateway's keys, in its order, is read by index; any other is searched by key.
        var ordered: [(key: String, value: JSONValue)]?
        if case .object(let members) = value.kind, members.count == EnvelopeField.keys.count,
            zip(members, EnvelopeField.keys).allSatisfy({ $0.key == $1 })
        {
            ordered = members
        }
        func field(_ field: EnvelopeField) -> JSONValue? {
            if let ordered { return ordered[field.rawValue].value }
            return value[field.key]
        }
        guard let id = field(.eventID)?.stringValue, let position = field(.position)?.int64Value,
            let aggregateID = field(.aggregateID)?.stringValue, let aggregateName = field(.aggregateName)?.stringValue,
            let version = field(.aggregateVersion)?.int64Value, let eventType = field(.eventType)?.stringValue,
            let recordedAt = field(.recordedAt)?.stringValue.flatMap(Timestamp.parseRFC3339)
        else { return nil }
        let payload = field(.payload).map { EventPayload(trustedJSON: Array(document[$0.range])) } ?? .null
        self.init(
            eventID: id, position: Position(position), aggregateID: aggregateID, aggregateName: aggregateName,
            version: version, eventType: eventType, recordedAtMilliseconds: recordedAt, payload: payload
        )
    }
}
