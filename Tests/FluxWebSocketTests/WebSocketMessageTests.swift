import FluxWebSocket
import NIOCore
import Testing

@Suite struct WebSocketMessageTests {
    @Test func textAndBinary() {
        #expect(WebSocketMessage(opcode: .text, data: ByteBuffer(string: "a")).isText)
        #expect(!WebSocketMessage(opcode: .binary, data: ByteBuffer()).isText)
    }
}
