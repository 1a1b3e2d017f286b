import FluxCore
import NIOCore

/// Encodes stored events as the feed's JSON envelopes (README "Wire protocol" → "Events and positions").
///
/// The first six fields are the original flux feed's, with its names and types; the payload bytes are
/// copied as stored, never re-encoded. An envelope is written through one ``JSONCursor`` (one `ByteBuffer`
/// call per event), and the `url` prefix is escaped once per encoder, not per event. The feed, the push channel
/// and server-sent events all write envelopes with it; ``EnvelopeDecoder`` reads them back.
public struct EnvelopeEncoder: Sendable {
    /// The public base URL (scheme, host and port, no trailing slash) used for each envelope's `url`.
    public let baseURL: String
    /// `<baseURL>/events/` as it appears inside the JSON string of `url` (escaped).
    @usableFromInline let urlPrefix: [UInt8]

    public init(baseURL: String) {
        self.baseURL = baseURL
        var json = JSONWriter(buffer: ByteBuffer())
        json.string(baseURL + "/events/")
        urlPrefix = Array(json.buffer.readableBytesView.dropFirst().dropLast())
    }

    /// Keys, punctuation, both integers and both timestamps (years of any `Int64` millisecond count) fit in this.
    @inlinable static var fixedSize: Int { 320 }

    /// The most bytes ``write(_:includePayload:into:)`` writes for `event`.
    @inlinable func maximumSize(of event: RecordedEvent, includePayload: Bool) -> Int {
        Self.fixedSize + urlPrefix.count + 3 * event.eventID.utf8.count
            + JSONCursor.maximumSize(ofString: event.eventID) + JSONCursor.maximumSize(ofString: event.aggregateName)
            + JSONCursor.maximumSize(ofString: event.eventType) + JSONCursor.maximumSize(ofString: event.aggregateID)
            + (includePayload ? event.payload.bytes.count : 0)
    }

    /// Writes `event`'s envelope, with its payload or without (the original feed's pages).
    @inlinable public func write(_ event: RecordedEvent, includePayload: Bool, into json: inout JSONWriter) {
        json.write(reserving: maximumSize(of: event, includePayload: includePayload)) { out in
            out.raw(#"{"event_id":"#); out.string(event.eventID)
            out.raw(#","url":""#); out.raw(urlPrefix); Self.writePathSegment(event.eventID, into: &out)
            out.raw(#"","aggregate_name":"#); out.string(event.aggregateName)
            out.raw(#","aggregate_version":"#); out.integer(event.version)
            out.raw(#","event_type":"#); out.string(event.eventType)
            out.raw(#","created":""#); Timestamp.writeAsctime(milliseconds: event.recordedAtMilliseconds) { out.raw($0) }
            out.raw(#"","aggregate_id":"#); out.string(event.aggregateID)
            out.raw(#","position":"#); out.integer(event.position.rawValue)
            out.raw(#","recorded_at":""#); Timestamp.writeRFC3339(milliseconds: event.recordedAtMilliseconds) { out.raw($0) }
            if includePayload {
                out.raw(#"","payload":"#); out.raw(event.payload.bytes)
                out.raw("}")
            } else {
                out.raw(#""}"#)
            }
        }
    }

    /// Writes `id` percent-encoded as a path segment (at most three bytes per byte; nothing to escape in JSON).
    @inlinable static func writePathSegment(_ id: String, into out: inout JSONCursor) {
        var id = id
        let unreserved = id.withUTF8 { utf8 in
            guard utf8.allSatisfy(URLEncoding.isUnreserved) else { return false }
            out.raw(UnsafeRawBufferPointer(utf8))
            return true
        }
        if !unreserved { out.raw(Array(URLEncoding.encodePathSegment(id).utf8)) }
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
