import FluxWebSocket
import NIOCore
import Testing

@Suite struct WebSocketErrorTests {
    @Test func mapsToCloseCodes() {
        #expect(WebSocketError.reservedOpcode.closeCode == .protocolError)
        #expect(WebSocketError.frameTooLarge.closeCode == .messageTooBig)
        #expect(WebSocketError.messageTooLarge.closeCode == .messageTooBig)
        #expect(WebSocketError.invalidUTF8.closeCode == .invalidFramePayloadData)
        #expect(WebSocketError.invalidCloseCode.closeCode == .protocolError)
    }

    @Test func patternMatchIgnoresDetail() {
        var parser = WebSocketFrameParser()
        var input = ByteBuffer(bytes: [0x83, 0x00])
        do {
            _ = try parser.parseStep(&input)
            Issue.record("expected an error")
        } catch WebSocketError.reservedOpcode {
            // expected
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func descriptionSaysWhatWentWrong() {
        #expect(WebSocketError.controlFrameTooLarge.description.contains("125"))
    }
}

