import FluxWebSocket
import NIOCore
import Testing

@Suite struct WebSocketPreparedMessageTests {
    static let text = String(repeating: "{\"type\":\"events\",\"position\":42} ", count: 20)

    @Test func plainFrameIsTheEncodedMessage() {
        let prepared = WebSocketPreparedMessage(opcode: .text, data: ByteBuffer(string: "Hello"))
        #expect(prepared.plainFrame.bytes == [0x81, 0x05] + Array("Hello".utf8))
        #expect(prepared.compressedFrame == nil)
        #expect(prepared.bytes(for: WebSocketDeflateParameters(serverNoContextTakeover: true)) == prepared.plainFrame)
    }

    @Test func compressedFrameGoesOnlyToCompatibleConnections() throws {
        let compressor = WebSocketDeflateCompressor(configuration: .init(noContextTakeover: true))
        let prepared = WebSocketPreparedMessage(opcode: .text, data: ByteBuffer(string: Self.text), compressor: compressor)
        let compressed = try #require(prepared.compressedFrame)
        #expect(compressed.readableBytes < prepared.plainFrame.readableBytes)

        #expect(prepared.bytes(for: WebSocketDeflateParameters(serverNoContextTakeover: true)) == compressed)
        #expect(prepared.bytes(for: nil) == prepared.plainFrame, "no deflate negotiated")
        #expect(prepared.bytes(for: WebSocketDeflateParameters()) == prepared.plainFrame, "context takeover: cannot share")
        #expect(prepared.bytes(for: WebSocketDeflateParameters(serverNoContextTakeover: true, serverMaxWindowBits: 10)) == prepared.plainFrame,
                "a smaller window than the compressor's")
    }

    @Test func everyConnectionCanInflateTheSharedFrame() throws {
        let compressor = WebSocketDeflateCompressor(configuration: .init(noContextTakeover: true))
        let prepared = WebSocketPreparedMessage(opcode: .text, data: ByteBuffer(string: Self.text), compressor: compressor)
        for _ in 0..<3 {
            // Each receiving client decompresses with the negotiated parameters.
            var machine = WebSocketConnectionStateMachine<ContinuousClock.Instant>(
                configuration: .init(role: .client, pingInterval: nil), deflate: WebSocketDeflateParameters(serverNoContextTakeover: true), now: .now)
            var wire = prepared.bytes(for: WebSocketDeflateParameters(serverNoContextTakeover: true))
            var parser = WebSocketFrameParser(configuration: .init(allowedReservedBits: .rsv1))
            guard case .frame(let frame) = try parser.parseStep(&wire) else {
                Issue.record("no frame")
                return
            }
            guard case .deliver(let message) = machine.frameReceived(frame, now: .now) else {
                Issue.record("not delivered")
                return
            }
            #expect(String(buffer: message.data) == Self.text)
        }
    }
}
