import FluxWebSocket
import NIOCore
import NIOEmbedded
import Testing

@Suite struct WebSocketFrameEncoderHandlerTests {
    static func written(_ channel: EmbeddedChannel) throws -> [UInt8] {
        var bytes: [UInt8] = []
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { bytes += buffer.bytes }
        return bytes
    }

    @Test func serverWritesUnmaskedFrames() throws {
        let channel = EmbeddedChannel(handler: WebSocketFrameEncoderHandler(maskFrames: false))
        try channel.writeOutbound(WebSocketFrame(opcode: .text, maskKey: WebSocketMaskingKey(1, 2, 3, 4), data: ByteBuffer(string: "Hello")))
        #expect(try Self.written(channel) == [0x81, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F])
        _ = try channel.finish()
    }

    @Test func largePayloadsAreWrittenWithoutCopying() throws {
        let channel = EmbeddedChannel(handler: WebSocketFrameEncoderHandler(maskFrames: false))
        let payload = ByteBuffer(bytes: randomBytes(5000))
        try channel.writeOutbound(WebSocketFrame(opcode: .binary, data: payload))
        let header = try #require(try channel.readOutbound(as: ByteBuffer.self))
        let body = try #require(try channel.readOutbound(as: ByteBuffer.self))
        #expect(header.bytes == [0x82, 0x7E, 0x13, 0x88])
        #expect(body == payload)
        _ = try channel.finish()
    }

    @Test func clientMasksEveryFrameWithAFreshKey() throws {
        let channel = EmbeddedChannel(handler: WebSocketFrameEncoderHandler(maskFrames: true))
        let payload = ByteBuffer(bytes: randomBytes(3000))
        try channel.writeOutbound(WebSocketFrame(opcode: .binary, data: payload))
        try channel.writeOutbound(WebSocketFrame(opcode: .binary, data: payload))
        var wire = ByteBuffer(bytes: try Self.written(channel))
        var parser = WebSocketFrameParser()
        guard case .frame(let first) = try parser.parseStep(&wire), case .frame(let second) = try parser.parseStep(&wire) else {
            Issue.record("expected two frames")
            return
        }
        #expect(first.maskKey != nil && second.maskKey != nil && first.maskKey != second.maskKey)
        #expect(first.data == payload && second.data == payload)
        _ = try channel.finish()
    }
}
