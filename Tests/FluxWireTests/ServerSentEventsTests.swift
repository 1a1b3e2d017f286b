import FluxCore
import FluxWire
import NIOCore
import Testing

@Suite struct ServerSentEventsTests {
    /// `id:` the position, `event:` the type (line breaks replaced), `data:` the envelope; `caught_up` with its head.
    @Test func writesTheProtocolsEvents() {
        var buffer = ByteBuffer()
        let event = RecordedEvent(
            eventID: "e", position: Position(12), aggregateID: "a", aggregateName: "A", version: 0, eventType: "x\ny\r",
            recordedAtMilliseconds: 0, payload: .null
        )
        ServerSentEvents.writeEvent(event, envelope: ByteBuffer(string: #"{"e":1}"#), into: &buffer)
        ServerSentEvents.writeCaughtUp(head: Position(12), into: &buffer)
        #expect(String(buffer: buffer) == "id: 12\nevent: x y \ndata: {\"e\":1}\n\nevent: caught_up\ndata: {\"head\":12}\n\n")
        #expect(String(buffer: ServerSentEvents.keepAlive) == ": keep-alive\n\n")
    }

    /// `event_names=message`: no `event:` line, so `EventSource.onmessage` gets every event; `caught_up` keeps its name.
    @Test func plainMessagesHaveNoEventLine() {
        var buffer = ByteBuffer()
        let event = RecordedEvent(
            eventID: "e", position: Position(3), aggregateID: "a", aggregateName: "A", version: 0, eventType: "t",
            recordedAtMilliseconds: 0, payload: .null
        )
        ServerSentEvents.writeEvent(event, envelope: ByteBuffer(string: #"{"e":1}"#), names: .message, into: &buffer)
        #expect(String(buffer: buffer) == "id: 3\ndata: {\"e\":1}\n\n")
        #expect(ServerSentEvents.EventNames(rawValue: "message") == .message)
        #expect(ServerSentEvents.EventNames(rawValue: "type") == .type)
    }
}
