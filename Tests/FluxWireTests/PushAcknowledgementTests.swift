import FluxCore
import FluxWire
import Testing

@Suite struct PushAcknowledgementTests {
    @Test func writesAndReadsTheProtocolsAck() {
        #expect(PushAcknowledgement(position: Position(7)).json == #"{"type":"ack","position":7}"#)
        #expect(PushAcknowledgement(json: Array(#"{"type": "ack", "position": 3}"#.utf8)) == PushAcknowledgement(position: Position(3)))
        #expect(PushAcknowledgement(json: Array(#"{"position":0,"type":"ack"}"#.utf8))?.position == Position(0))
    }

    /// Anything else is no ack (the gateway closes with 1008 on it).
    @Test func refusesAnythingElse() {
        for text in [
            #"{"type":"ack","position":-1}"#, #"{"type":"ack","position":1.5}"#, #"{"type":"ack","position":"1"}"#,
            #"{"type":"ack"}"#, #"{"type":"nack","position":1}"#, #"{"position":1}"#, "ack", "",
        ] {
            #expect(PushAcknowledgement(json: Array(text.utf8)) == nil, "\(text)")
        }
    }
}
