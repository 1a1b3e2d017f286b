import FluxCore
@testable import FluxGateway
import FluxWire
import NIOCore
import Testing

@Suite struct DeliveryBatchTests {
    private func events(_ count: Int, payloadSize: Int = 10) -> [RecordedEvent] {
        (1...count).map { index in
            RecordedEvent(
                eventID: "id-\(index)", position: Position(Int64(index)), aggregateID: "a", aggregateName: "A", version: Int64(index - 1),
                eventType: "t", recordedAtMilliseconds: 1_795_705_332_345,
                payload: EventPayload(trustedJSON: Array(("\"" + String(repeating: "p", count: payloadSize) + "\"").utf8)))
        }
    }

    /// The catch-up frame, built in one buffer, must be byte for byte the frame the hub shares
    /// (all three length forms: ≤125, 16-bit, 64-bit).
    @Test(arguments: [(1, 10), (3, 10), (400, 10), (300, 1000)])
    func theSingleBufferFrameEqualsTheSharedFrame(count: Int, payloadSize: Int) {
        let page = events(count, payloadSize: payloadSize)
        let epoch = StoreEpoch(rawValue: "e")
        let encoder = EnvelopeEncoder(baseURL: "http://h")
        let direct = DeliveryBatch.plainEventsFrame(page, epoch: epoch, encoder: encoder)
        let shared = DeliveryBatch(events: page.map { EncodedEvent($0, encoder: encoder) }, epoch: epoch)
            .webSocketFrame(for: nil, compressor: SharedDeflateCompressor())
        #expect(Array(direct.readableBytesView) == Array(shared.readableBytesView))
    }
}
