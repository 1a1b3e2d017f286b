import FluxCore
@testable import FluxConsumer
import NIOCore
import Testing

@Suite struct FeedPageTests {
    /// Envelopes in the gateway's key order are read by index; reordered ones, or ones without a payload, by key:
    /// both give the same event.
    @Test func decodesEnvelopesInAnyKeyOrder() throws {
        let ordered = #"{"event_id":"e1","url":"http://h/events/e1","aggregate_name":"A","aggregate_version":3,"event_type":"t","created":"Thu Nov 26 15:02:12 2026","aggregate_id":"a1","position":7,"recorded_at":"2026-11-26T15:02:12.345Z","payload":{"n":1}}"#
        let reordered = #"{"payload":{"n":1},"position":7,"event_id":"e1","aggregate_id":"a1","aggregate_name":"A","aggregate_version":3,"event_type":"t","recorded_at":"2026-11-26T15:02:12.345Z"}"#
        let withoutPayload = #"{"event_id":"e1","url":"http://h/events/e1","aggregate_name":"A","aggregate_version":3,"event_type":"t","created":"Thu Nov 26 15:02:12 2026","aggregate_id":"a1","position":7,"recorded_at":"2026-11-26T15:02:12.345Z"}"#
        let body = #"{"events":["# + [ordered, reordered, withoutPayload].joined(separator: ",") + #"],"head":7,"epoch":"x","next":""}"#
        let page = try FeedPage(json: ByteBuffer(string: body))
        let expected = RecordedEvent(
            eventID: "e1", position: Position(7), aggregateID: "a1", aggregateName: "A", version: 3, eventType: "t",
            recordedAtMilliseconds: 1_795_705_332_345, payload: EventPayload(trustedJSON: Array(#"{"n":1}"#.utf8))
        )
        #expect(page.events.count == 3)
        #expect(page.events[0] == expected)
        #expect(page.events[1] == expected)
        var bare = expected
        bare.payload = .null
        #expect(page.events[2] == bare)
    }
}
