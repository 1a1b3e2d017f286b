import FluxCore

/// Decodes the JSON envelopes ``EnvelopeEncoder`` writes (README "Wire protocol" → "Events and positions"), from
/// feed pages and push-channel messages alike.
///
/// An envelope with exactly the gateway's keys, in its order, is read by index; any other (another server's, a
/// hand-written one, one without `payload`) is searched by key. The payload keeps the bytes of the document.
public enum EnvelopeDecoder {
    /// The keys of an envelope with payload, in the order the gateway writes them.
    private enum Field: Int {
        case eventID, url, aggregateName, aggregateVersion, eventType, created, aggregateID, position, recordedAt, payload

        static let keys = [
            "event_id", "url", "aggregate_name", "aggregate_version", "event_type", "created", "aggregate_id", "position",
            "recorded_at", "payload",
        ]

        var key: String { Self.keys[rawValue] }
    }

    /// The envelope keys whose values a ``RecordedEvent`` does not build (`payload` is only sliced, `url` and
    /// `created` only checked): parse with them as `opaqueKeys` when the document is known to be UTF-8.
    public static let opaqueKeys: Set<String> = ["payload", "url", "created"]

    /// The event of one envelope of `document`, or `nil` when a field is missing or has the wrong type.
    public static func event(from value: JSONValue, in document: [UInt8]) -> RecordedEvent? {
        var ordered: [(key: String, value: JSONValue)]?
        if case .object(let members) = value.kind, members.count == Field.keys.count,
            zip(members, Field.keys).allSatisfy({ $0.key == $1 })
        {
            ordered = members
        }
        func field(_ field: Field) -> JSONValue? {
            if let ordered { return ordered[field.rawValue].value }
            return value[field.key]
        }
        guard let id = field(.eventID)?.stringValue, let position = field(.position)?.int64Value,
            let aggregateID = field(.aggregateID)?.stringValue, let aggregateName = field(.aggregateName)?.stringValue,
            let version = field(.aggregateVersion)?.int64Value, let eventType = field(.eventType)?.stringValue,
            let recordedAt = field(.recordedAt)?.stringValue.flatMap(Timestamp.parseRFC3339)
        else { return nil }
        let payload = field(.payload).map { EventPayload(trustedJSON: Array(document[$0.range])) } ?? .null
        return RecordedEvent(
            eventID: id, position: Position(position), aggregateID: aggregateID, aggregateName: aggregateName,
            version: version, eventType: eventType, recordedAtMilliseconds: recordedAt, payload: payload
        )
    }
}
