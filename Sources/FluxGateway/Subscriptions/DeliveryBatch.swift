import FluxCore
import FluxWebSocket
import FluxWire
import NIOCore
import Synchronization

/// Consecutive events for one group of subscribers (same filter, same base URL), encoded lazily once per
/// wire format and shared by every subscriber of the group: the hub never encodes per subscriber.
public final class DeliveryBatch: Sendable {
    /// The events, in position order, each with its envelope JSON (payload included) already encoded.
    public let events: [EncodedEvent]
    public let epoch: StoreEpoch

    private struct Cache {
        var serverSentEvents: ByteBuffer?
        var serverSentMessages: ByteBuffer?
        var eventsMessage: ByteBuffer?
        var plainFrame: WebSocketPreparedMessage?
        var compressedFrame: WebSocketPreparedMessage?
    }

    private let cache = Mutex(Cache())

    public init(events: [EncodedEvent], epoch: StoreEpoch) {
        precondition(!events.isEmpty)
        self.events = events
        self.epoch = epoch
    }

    /// The position of the last event.
    public var lastPosition: Position { events[events.count - 1].position }

    /// The batch as server-sent events: `id: <position>`, `event: <type>`, `data: <envelope>` per event.
    public var serverSentEvents: ByteBuffer { serverSentEvents(names: .type) }

    /// The batch as server-sent events named as `names` says (``ServerSentEvents/EventNames``), made once per naming.
    public func serverSentEvents(names: ServerSentEvents.EventNames) -> ByteBuffer {
        cache.withLock { cache in
            let cached = names == .type ? cache.serverSentEvents : cache.serverSentMessages
            if let cached { return cached }
            var buffer = ByteBuffer()
            for event in events { event.writeServerSentEvent(names: names, into: &buffer) }
            switch names {
            case .type: cache.serverSentEvents = buffer
            case .message: cache.serverSentMessages = buffer
            }
            return buffer
        }
    }

    /// The batch as the push channel's JSON message: `{"type":"events","epoch":E,"events":[…]}`.
    public var eventsMessage: ByteBuffer {
        cache.withLock { cache in
            if let cached = cache.eventsMessage { return cached }
            let buffer = Self.eventsMessage(events, epoch: epoch)
            cache.eventsMessage = buffer
            return buffer
        }
    }

    /// The events message as one WebSocket text frame for a connection that negotiated `deflate` (or
    /// nothing): compressed once with the shared compressor when the connection can take it.
    func webSocketFrame(for deflate: WebSocketDeflateParameters?, compressor: SharedDeflateCompressor) -> ByteBuffer {
        let message = eventsMessage
        return cache.withLock { cache in
            if let deflate, deflate.serverNoContextTakeover, (deflate.serverMaxWindowBits ?? 15) >= 15 {
                if cache.compressedFrame == nil { cache.compressedFrame = compressor.prepare(text: message) }
                return cache.compressedFrame!.bytes(for: deflate)
            }
            if cache.plainFrame == nil { cache.plainFrame = SharedDeflateCompressor.preparePlain(text: message) }
            return cache.plainFrame!.plainFrame
        }
    }

    /// One uncompressed text frame holding the events message for `page`, written in a single buffer with no
    /// intermediate per-event buffers (catch-up: encoded for one subscriber, so nothing to share).
    static func plainEventsFrame(_ page: [RecordedEvent], epoch: StoreEpoch, encoder: EnvelopeEncoder) -> ByteBuffer {
        let headerRoom = WebSocketFrameEncoder.maxUnmaskedHeaderSize
        var json = JSONWriter(buffer: ByteBuffer())
        json.buffer.reserveCapacity(headerRoom + 64 + page.reduce(0) { $0 + $1.payload.bytes.count + 360 })
        json.buffer.moveWriterIndex(forwardBy: headerRoom)
        PushMessage.writeEvents(page, epoch: epoch, into: &json) { event, json in
            encoder.write(event, includePayload: true, into: &json)
        }
        var buffer = json.buffer
        WebSocketFrameEncoder.frame(&buffer, reservedHeaderBytes: headerRoom, opcode: .text)
        return buffer
    }

    /// Builds an events message from encoded envelopes.
    static func eventsMessage(_ events: some Collection<EncodedEvent>, epoch: StoreEpoch) -> ByteBuffer {
        var json = JSONWriter(buffer: ByteBuffer())
        json.buffer.reserveCapacity(events.reduce(64) { $0 + $1.envelope.readableBytes + 1 })
        PushMessage.writeEvents(events, epoch: epoch, into: &json) { event, json in
            json.buffer.writeImmutableBuffer(event.envelope)
        }
        return json.buffer
    }
}

/// One stored event with its envelope encoded once.
public struct EncodedEvent: Sendable {
    public let event: RecordedEvent
    /// The envelope JSON, payload included.
    public let envelope: ByteBuffer

    public var position: Position { event.position }

    init(_ event: RecordedEvent, encoder: EnvelopeEncoder) {
        self.event = event
        var json = JSONWriter(buffer: ByteBuffer())
        json.buffer.reserveCapacity(event.payload.bytes.count + 320)
        encoder.write(event, includePayload: true, into: &json)
        self.envelope = json.buffer
    }

    /// The event as a server-sent event (``ServerSentEvents/writeEvent(_:envelope:names:into:)``).
    func writeServerSentEvent(names: ServerSentEvents.EventNames = .type, into buffer: inout ByteBuffer) {
        ServerSentEvents.writeEvent(event, envelope: envelope, names: names, into: &buffer)
    }
}
