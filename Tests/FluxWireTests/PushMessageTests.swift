import FluxCore
import FluxWire
import NIOCore
import Testing

@Suite struct PushMessageTests {
    private static let event = RecordedEvent(
        eventID: "e1", position: Position(7), aggregateID: "a1", aggregateName: "A", version: 3, eventType: "t",
        recordedAtMilliseconds: 1_795_705_332_345, payload: EventPayload(trustedJSON: Array(#"{"n":1}"#.utf8))
    )

    /// The messages of the README's "Wire protocol" → "Push channel", byte for byte.
    @Test func writesTheProtocolsMessages() {
        #expect(String(buffer: PushMessage.caughtUp(head: Position(42)).json(baseURL: "http://h")) == #"{"type":"caught_up","head":42}"#)
        #expect(
            String(buffer: PushMessage.events(epoch: StoreEpoch(rawValue: "ep"), [Self.event, Self.event]).json(baseURL: "http://h"))
                == #"{"type":"events","epoch":"ep","events":["# + Self.event.envelopeJSON(baseURL: "http://h") + ","
                + Self.event.envelopeJSON(baseURL: "http://h") + "]}"
        )
    }

    @Test func readsWhatItWrites() {
        let messages: [PushMessage] = [
            .caughtUp(head: Position(0)), .caughtUp(head: Position(Int64.max)),
            .events(epoch: StoreEpoch(rawValue: "e\"p"), [Self.event]), .events(epoch: StoreEpoch(rawValue: "x"), []),
        ]
        for message in messages {
            #expect(PushMessage(json: Array(message.json(baseURL: "http://h").readableBytesView)) == message)
        }
    }

    /// A message of a type this version does not know, or no message of the protocol, decodes to `nil` (a consumer
    /// skips it); an envelope that lacks a field is left out of its message.
    @Test func skipsWhatItDoesNotKnow() {
        for text in [#"{"type":"hello","x":1}"#, #"{"head":3}"#, "[]", "not json", #"{"type":"events","events":[]}"#] {
            #expect(PushMessage(json: Array(text.utf8)) == nil, "\(text)")
        }
        let partial = #"{"type":"events","epoch":"x","events":[{"event_id":"e1"}]}"#
        #expect(PushMessage(json: Array(partial.utf8)) == .events(epoch: StoreEpoch(rawValue: "x"), []))
    }
}
