import FluxCore
import FluxWire
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
            guard let event = EnvelopeDecoder.event(from: value, in: bytes) else { throw fail("an envelope lacks a field") }
            return event
        }
    }
}
