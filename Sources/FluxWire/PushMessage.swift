import FluxCore
import NIOCore

/// A message the gateway sends a subscriber on the push channel (README "Wire protocol" → "Push channel"): one
/// JSON object per WebSocket text message.
///
/// - `{"type":"events","epoch":E,"events":[…]}`: envelopes with payload (``EnvelopeEncoder``), in position order;
/// - `{"type":"caught_up","head":N}`: once, when the backlog is delivered.
///
/// The gateway writes them with ``writeEvents(_:epoch:into:writeEvent:)`` and ``writeCaughtUp(head:into:)`` (an
/// events message from envelopes it encoded once for many subscribers); consumers read them with
/// ``init(json:)``. What a subscriber may send back is a ``PushAcknowledgement``.
public enum PushMessage: Sendable, Equatable {
    /// Events in position order.
    case events(epoch: StoreEpoch, [RecordedEvent])
    /// The backlog is delivered; live events follow.
    case caughtUp(head: Position)
}

// MARK: - Encoding (the gateway)

extension PushMessage {
    /// The message's JSON; the envelopes' `url`s start with `baseURL`.
    public func json(baseURL: String) -> ByteBuffer {
        var json = JSONWriter(buffer: ByteBuffer())
        switch self {
        case .events(let epoch, let events):
            let encoder = EnvelopeEncoder(baseURL: baseURL)
            Self.writeEvents(events, epoch: epoch, into: &json) { event, json in
                encoder.write(event, includePayload: true, into: &json)
            }
        case .caughtUp(let head):
            Self.writeCaughtUp(head: head, into: &json)
        }
        return json.buffer
    }

    /// Writes an events message: `{"type":"events","epoch":E,"events":[…]}`, each element written by `writeEvent`
    /// (one envelope with payload: encoded here, or copied from an envelope encoded once for many subscribers).
    @inlinable
    public static func writeEvents<Events: Sequence>(
        _ events: Events, epoch: StoreEpoch, into json: inout JSONWriter, writeEvent: (Events.Element, inout JSONWriter) -> Void
    ) {
        json.raw(#"{"type":"events","epoch":"#)
        json.string(epoch.rawValue)
        json.raw(#","events":["#)
        var first = true
        for event in events {
            if !first { json.raw(",") }
            first = false
            writeEvent(event, &json)
        }
        json.raw("]}")
    }

    /// Writes `{"type":"caught_up","head":N}`.
    @inlinable
    public static func writeCaughtUp(head: Position, into json: inout JSONWriter) {
        json.raw(#"{"type":"caught_up","head":"#)
        json.integer(head.rawValue)
        json.raw("}")
    }
}

// MARK: - Decoding (the consumer)

extension PushMessage {
    /// Decodes one text message (its bytes must be UTF-8, as a WebSocket text message's are: payloads are sliced,
    /// and the envelope fields a ``RecordedEvent`` has no place for only checked, never built).
    ///
    /// `nil` for JSON that is no message of this protocol, and for a message of a type this version does not know
    /// (a newer gateway may send more: skip it). An envelope that lacks a field is left out of its events message.
    public init?(json bytes: [UInt8]) {
        guard let json = try? JSONParser.parse(bytes, opaqueKeys: EnvelopeDecoder.opaqueKeys) else { return nil }
        switch json["type"]?.stringValue {
        case "events":
            guard let epoch = json["epoch"]?.stringValue, let values = json["events"]?.arrayValue else { return nil }
            self = .events(epoch: StoreEpoch(rawValue: epoch), values.compactMap { EnvelopeDecoder.event(from: $0, in: bytes) })
        case "caught_up":
            self = .caughtUp(head: Position(json["head"]?.int64Value ?? 0))
        default:
            return nil
        }
    }
}
