import FluxCore
import FluxWire
import NIOCore
import Testing

/// The consumer groups' WebSocket messages (README "Wire protocol" → "Consumer groups"): what the gateway writes
/// reads back, and what a member may send is parsed strictly.
@Suite struct GroupMessageTests {
    private static let event = RecordedEvent(
        eventID: "e1", position: Position(7), aggregateID: "a1", aggregateName: "A", version: 3, eventType: "t",
        recordedAtMilliseconds: 1_795_705_332_345, payload: EventPayload(trustedJSON: Array(#"{"n":1}"#.utf8))
    )

    @Test func eventsAndErrorsReadBackAsWritten() {
        var json = JSONWriter(buffer: ByteBuffer())
        let encoder = EnvelopeEncoder(baseURL: "http://h")
        GroupMessage.writeEvents([(Self.event, 1), (Self.event, 3)], group: "g", member: "m\"1", into: &json) { lease, json in
            encoder.write(lease.0, includePayload: true, into: &json)
            return lease.1
        }
        #expect(GroupMessage(json: Array(json.buffer.readableBytesView)) == .events([.init(event: Self.event, attempt: 1), .init(event: Self.event, attempt: 3)]))
        var error = JSONWriter(buffer: ByteBuffer())
        GroupMessage.writeError(code: "not_leased", message: "event 9 is not leased", into: &error)
        #expect(GroupMessage(json: Array(error.buffer.readableBytesView)) == .error(code: "not_leased", message: "event 9 is not leased"))
        for text in [#"{"type":"hello"}"#, "[]", "not json", #"{"type":"events"}"#] {
            #expect(GroupMessage(json: Array(text.utf8)) == nil, "\(text)")
        }
        // A lease with a bad attempt or an incomplete envelope is left out.
        let partial = #"{"type":"events","events":[{"attempt":0,"event":{}},{"attempt":1,"event":{"event_id":"x"}}]}"#
        #expect(GroupMessage(json: Array(partial.utf8)) == .events([]))
    }

    @Test func settlementsRoundTripAndAnythingElseIsRefused() {
        let settlements: [GroupSettlement] = [
            .ack([Position(1)]), .ack((1...1000).map { Position(Int64($0)) }), .nack(Position(5), reason: "bad \"data\" ü"),
        ]
        for settlement in settlements {
            #expect(GroupSettlement(json: Array(settlement.json.utf8)) == settlement)
        }
        #expect(GroupSettlement(json: Array(#"{"type":"nack","position":4}"#.utf8)) == .nack(Position(4), reason: "rejected by its member"))
        let refused = [
            #"{"type":"ack","positions":[]}"#, #"{"type":"ack","positions":[0]}"#, #"{"type":"ack","positions":[-1]}"#,
            #"{"type":"ack","positions":["1"]}"#, #"{"type":"ack","positions":1}"#, #"{"type":"nack","position":0}"#,
            #"{"type":"nack","position":1,"reason":7}"#, #"{"type":"ack"}"#, #"{"type":"subscribe"}"#, "[]", "",
            #"{"type":"ack","positions":["# + (1...1001).map(String.init).joined(separator: ",") + "]}",
        ]
        for text in refused {
            #expect(GroupSettlement(json: Array(text.utf8)) == nil, "\(text.prefix(80))")
        }
        let long = GroupSettlement(json: Array(#"{"type":"nack","position":1,"reason":"\#(String(repeating: "x", count: 5000))"}"#.utf8))
        if case .nack(_, let reason)? = long { #expect(reason.utf8.count == GroupSettlement.maximumReasonBytes) } else { Issue.record("not parsed") }
    }
}
