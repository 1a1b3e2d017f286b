import FluxCore
import FluxWire
import NIOCore
import Testing

@Suite struct EnvelopeDecoderTests {
    private static let expected = RecordedEvent(
        eventID: "e1", position: Position(7), aggregateID: "a1", aggregateName: "A", version: 3, eventType: "t",
        recordedAtMilliseconds: 1_795_705_332_345, payload: EventPayload(trustedJSON: Array(#"{"n":1}"#.utf8))
    )

    private func decode(_ text: String, opaqueKeys: Set<String> = []) throws -> RecordedEvent? {
        let bytes = Array(text.utf8)
        return EnvelopeDecoder.event(from: try JSONParser.parse(bytes, opaqueKeys: opaqueKeys), in: bytes)
    }

    /// Envelopes in the gateway's key order are read by index; reordered ones, or ones without a payload, by key:
    /// both give the same event.
    @Test func decodesEnvelopesInAnyKeyOrder() throws {
        let ordered = #"{"event_id":"e1","url":"http://h/events/e1","aggregate_name":"A","aggregate_version":3,"event_type":"t","created":"Thu Nov 26 15:02:12 2026","aggregate_id":"a1","position":7,"recorded_at":"2026-11-26T15:02:12.345Z","payload":{"n":1}}"#
        let reordered = #"{"payload":{"n":1},"position":7,"event_id":"e1","aggregate_id":"a1","aggregate_name":"A","aggregate_version":3,"event_type":"t","recorded_at":"2026-11-26T15:02:12.345Z"}"#
        let withoutPayload = #"{"event_id":"e1","url":"http://h/events/e1","aggregate_name":"A","aggregate_version":3,"event_type":"t","created":"Thu Nov 26 15:02:12 2026","aggregate_id":"a1","position":7,"recorded_at":"2026-11-26T15:02:12.345Z"}"#
        #expect(try decode(ordered) == Self.expected)
        #expect(try decode(ordered, opaqueKeys: EnvelopeDecoder.opaqueKeys) == Self.expected)
        #expect(try decode(reordered) == Self.expected)
        var bare = Self.expected
        bare.payload = .null
        #expect(try decode(withoutPayload) == bare)
    }

    /// What the encoder writes, the decoder reads back: every field, the payload byte for byte.
    @Test func readsWhatTheEncoderWrites() throws {
        let event = RecordedEvent(
            eventID: "id 1/\"é", position: Position(Int64.max), aggregateID: "agg\u{1}", aggregateName: "A\\b", version: 0,
            eventType: "t\n\t\r", recordedAtMilliseconds: 1_795_705_332_345,
            payload: EventPayload(trustedJSON: Array(#"{"x": [1, 2.50, "\u00e9"]}"#.utf8))
        )
        #expect(try decode(event.envelopeJSON(baseURL: "http://h:1"), opaqueKeys: EnvelopeDecoder.opaqueKeys) == event)
    }

    @Test func refusesEnvelopesThatLackAFieldOrHaveTheWrongType() throws {
        let valid = #"{"event_id":"e1","aggregate_name":"A","aggregate_version":3,"event_type":"t","aggregate_id":"a1","position":7,"recorded_at":"2026-11-26T15:02:12.345Z"}"#
        #expect(try decode(valid) != nil)
        for broken in [
            valid.replacingOccurrences(of: #""position":7"#, with: #""position":"7""#),
            valid.replacingOccurrences(of: #""event_id":"e1","#, with: ""),
            valid.replacingOccurrences(of: "2026-11-26T15:02:12.345Z", with: "Thu Nov 26 15:02:12 2026"),
            valid.replacingOccurrences(of: #""aggregate_version":3"#, with: #""aggregate_version":3.5"#),
            "[]",
        ] {
            #expect(try decode(broken) == nil, "\(broken)")
        }
    }
}
