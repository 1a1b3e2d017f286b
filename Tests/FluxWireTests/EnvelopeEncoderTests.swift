import FluxCore
import FluxWire
import NIOCore
import Testing

@Suite struct EnvelopeEncoderTests {
    private func encode(_ event: RecordedEvent, baseURL: String, includePayload: Bool) -> String {
        var json = JSONWriter(buffer: ByteBuffer())
        EnvelopeEncoder(baseURL: baseURL).write(event, includePayload: includePayload, into: &json)
        return String(buffer: json.buffer)
    }

    /// The envelope of the README's "Wire protocol", byte for byte: field order, no spaces, asctime `created`,
    /// RFC 3339 `recorded_at`.
    @Test func writesTheProtocolsEnvelope() {
        let event = RecordedEvent(
            eventID: "2f1c-uuid", position: Position(1042), aggregateID: "acc-17", aggregateName: "Account", version: 3,
            eventType: "account.AccountCredited", recordedAtMilliseconds: 1_795_705_332_345,
            payload: EventPayload(trustedJSON: Array(#"{"amount":50}"#.utf8))
        )
        #expect(
            encode(event, baseURL: "http://host:8080", includePayload: true)
                == #"{"event_id":"2f1c-uuid","url":"http://host:8080/events/2f1c-uuid","aggregate_name":"Account","aggregate_version":3,"event_type":"account.AccountCredited","created":"Thu Nov 26 15:02:12 2026","aggregate_id":"acc-17","position":1042,"recorded_at":"2026-11-26T15:02:12.345Z","payload":{"amount":50}}"#
        )
    }

    /// Strings are escaped (RFC 8259 §7), the id in `url` is percent-encoded (RFC 3986), and so is a base URL
    /// with characters JSON must escape; without the payload the envelope ends after `recorded_at`.
    @Test func escapesStringsAndPercentEncodesTheURL() {
        let event = RecordedEvent(
            eventID: "id 1/\"é", position: Position(Int64.max), aggregateID: "agg\u{1}", aggregateName: "A\\b", version: 0,
            eventType: "t\n\t\r", recordedAtMilliseconds: 1_795_705_332_345, payload: EventPayload(trustedJSON: Array("1".utf8))
        )
        #expect(
            encode(event, baseURL: "http://h\"q\\", includePayload: false)
                == #"{"event_id":"id 1/\"é","url":"http://h\"q\\/events/id%201%2F%22%C3%A9","aggregate_name":"A\\b","aggregate_version":0,"event_type":"t\n\t\r","created":"Thu Nov 26 15:02:12 2026","aggregate_id":"agg\u0001","position":9223372036854775807,"recorded_at":"2026-11-26T15:02:12.345Z"}"#
        )
    }

    /// Long fields and a large payload stay within the space the encoder reserves.
    @Test func longFieldsFitTheReservation() {
        let long = String(repeating: "\u{1}", count: 3000)
        let event = RecordedEvent(
            eventID: long, position: Position(1), aggregateID: long, aggregateName: long, version: Int64.min,
            eventType: long, recordedAtMilliseconds: Int64.max / 2, payload: EventPayload(trustedJSON: Array(repeating: 0x31, count: 100_000))
        )
        let json = encode(event, baseURL: long, includePayload: true)
        #expect(json.hasPrefix(#"{"event_id":"\u0001"#))
        #expect(json.hasSuffix(String(repeating: "1", count: 100_000) + "}"))
    }
}
