import FluxCore
import FluxConsumer
import NIOCore
import Testing

@Suite struct FeedPageTests {
    private static let envelope = #"{"event_id":"e1","url":"http://h/events/e1","aggregate_name":"A","aggregate_version":3,"event_type":"t","created":"Thu Nov 26 15:02:12 2026","aggregate_id":"a1","position":7,"recorded_at":"2026-11-26T15:02:12.345Z","payload":{"n":1}}"#

    /// A page's head, epoch and next link, and its envelopes (decoded by FluxWire's `EnvelopeDecoder`).
    @Test func decodesAPage() throws {
        let body = #"{"description":"event feed","events":["# + Self.envelope + #"],"head":9,"epoch":"x","next":"http://h/events?after=7"}"#
        let page = try FeedPage(json: ByteBuffer(string: body))
        #expect(page.head == Position(9))
        #expect(page.epoch == StoreEpoch(rawValue: "x"))
        #expect(page.next == "http://h/events?after=7")
        #expect(page.events.map(\.position) == [Position(7)])
        #expect(page.events.first?.payload == EventPayload(trustedJSON: Array(#"{"n":1}"#.utf8)))
    }

    /// The original feed's page (no head, no epoch) and a page with a broken envelope are refused.
    @Test func refusesPagesThatLackAField() {
        let legacy = #"{"description":"event feed","events":["# + Self.envelope + "]}"
        let broken = #"{"events":[{"event_id":"e1"}],"head":9,"epoch":"x","next":""}"#
        for body in [legacy, broken, "{", "[]"] {
            #expect(throws: (any Error).self) { try FeedPage(json: ByteBuffer(string: body)) }
        }
    }
}
