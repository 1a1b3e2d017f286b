import FluxWebSocket
import NIOCore
import Testing

@Suite struct WebSocketMessageTests {
    @Test func textAndBinary() {
        #expect(WebSocketMessage(opcode: .text, data: ByteBuffer(string: "a")).isText)
        #expect(!WebSocketMessage(opcode: .binary, data: ByteBuffer()).isText)
    }

    /// A message fits in an existential's inline buffer (three words), so `NIOAny` carries it between handlers
    /// without allocating a box per message.
    @Test func fitsInAnExistentialWithoutABox() {
        #expect(MemoryLayout<WebSocketMessage>.size <= 3 * MemoryLayout<Int>.size, "\(MemoryLayout<WebSocketMessage>.size) bytes")
    }
}
