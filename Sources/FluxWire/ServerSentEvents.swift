import FluxCore
import NIOCore

/// The push channel's fallback as server-sent events (README "Wire protocol" → "Server-sent events"): per event
/// `id:` its position, `event:` its type (or no `event:` line: see ``EventNames``), `data:` its envelope;
/// `event: caught_up` with `data: {"head":N}` once the backlog is delivered; a comment line now and then to keep
/// proxies from closing an idle stream.
public enum ServerSentEvents {
    /// How the events of a stream are named (the `event_names` query parameter).
    public enum EventNames: String, Sendable, CaseIterable {
        /// `event: <event type>`: a browser's `EventSource` hands them to `addEventListener(type, …)` only.
        case type
        /// No `event:` line, so every event is a `message`: what `EventSource.onmessage` receives.
        case message
    }

    /// Writes one event's `id:`, `event:` (unless `names` is ``EventNames/message``) and `data:` lines, then the
    /// blank line. `envelope` is the event's envelope JSON (``EnvelopeEncoder``), which has no raw newlines.
    public static func writeEvent(_ event: RecordedEvent, envelope: ByteBuffer, names: EventNames = .type, into buffer: inout ByteBuffer) {
        buffer.writeStaticString("id: ")
        buffer.writeString(String(event.position.rawValue))
        if names == .type {
            buffer.writeStaticString("\nevent: ")
            // An event type with a line break would end the field early: such bytes are replaced by spaces.
            let eventType = event.eventType
            buffer.writeString(eventType.contains(where: \.isNewline) ? String(eventType.map { $0.isNewline ? " " : $0 }) : eventType)
        }
        buffer.writeStaticString("\ndata: ")
        buffer.writeImmutableBuffer(envelope)
        buffer.writeStaticString("\n\n")
    }

    /// Writes `event: caught_up` with `data: {"head":N}`.
    public static func writeCaughtUp(head: Position, into buffer: inout ByteBuffer) {
        buffer.writeStaticString("event: caught_up\ndata: {\"head\":")
        buffer.writeString(String(head.rawValue))
        buffer.writeStaticString("}\n\n")
    }

    /// A comment line, which clients ignore (keeps proxies from closing an idle stream).
    public static let keepAlive = ByteBuffer(string: ": keep-alive\n\n")
}
