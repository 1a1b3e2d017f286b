import FluxCore
import NIOCore

/// Encodes stored events as the feed's JSON envelopes (PROTOCOL.md "Event envelope").
///
/// The first six fields are the original flux feed's, with its names and types; the payload bytes are
/// copied as stored, never re-encoded.
struct EnvelopeEncoder {
    /// The public base URL (scheme, host and port, no trailing slash) used for each envelope's `url`.
    var baseURL: String

    func write(_ event: RecordedEvent, includePayload: Bool, into json: inout JSONWriter) {
        json.raw("{")
        json.key("event_id"); json.string(event.eventID)
        json.raw(",")
        json.key("url"); json.url(base: baseURL, eventID: event.eventID)
        json.raw(",")
        json.key("aggregate_name"); json.string(event.aggregateName)
        json.raw(",")
        json.key("aggregate_version"); json.integer(event.version)
        json.raw(",")
        json.key("event_type"); json.string(event.eventType)
        json.raw(",")
        json.key("created"); json.quoted { Timestamp.writeAsctime(milliseconds: event.recordedAtMilliseconds, $0) }
        json.raw(",")
        json.key("aggregate_id"); json.string(event.aggregateID)
        json.raw(",")
        json.key("position"); json.integer(event.position.rawValue)
        json.raw(",")
        json.key("recorded_at"); json.quoted { Timestamp.writeRFC3339(milliseconds: event.recordedAtMilliseconds, $0) }
        if includePayload {
            json.raw(",")
            json.key("payload"); json.raw(bytes: event.payload.bytes)
        }
        json.raw("}")
    }
}

extension RecordedEvent {
    /// The event's envelope as the feed writes it (payload included), e.g. for a JSON-lines printout.
    public func envelopeJSON(baseURL: String) -> String {
        var json = JSONWriter(buffer: ByteBuffer())
        EnvelopeEncoder(baseURL: baseURL).write(self, includePayload: true, into: &json)
        return String(buffer: json.buffer)
    }
}
