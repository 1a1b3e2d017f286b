import FluxWebSocket
import NIOCore
import NIOEmbedded
import NIOTestUtils
import Testing

@Suite struct WebSocketFrameDecoderTests {
    static func encoded(_ frames: [WebSocketFrame]) -> ByteBuffer {
        var buffer = ByteBuffer()
        for frame in frames { WebSocketFrameEncoder.encode(frame, into: &buffer) }
        return buffer
    }

    /// NIOTestUtils feeds the input byte by byte, in halves, in random splits and all at once.
    /// (The 64-bit length encoding is split-tested in WebSocketFrameParserTests; byte-by-byte feeding of
    /// 64 KiB is too slow for a debug build.)
    @Test func decodesAnySplitOfTheInput() throws {
        let key = WebSocketMaskingKey(0xA1, 0xB2, 0xC3, 0xD4)
        let frames = [
            WebSocketFrame(opcode: .text, maskKey: key, data: ByteBuffer(string: "Hello")),
            WebSocketFrame(fin: false, opcode: .binary, maskKey: key, data: ByteBuffer(bytes: randomBytes(300))),
            WebSocketFrame(opcode: .ping, maskKey: key, data: ByteBuffer()),
            WebSocketFrame(opcode: .continuation, maskKey: key, data: ByteBuffer(bytes: randomBytes(3000, seed: 5))),
            WebSocketFrame(opcode: .connectionClose, data: ByteBuffer(bytes: [0x03, 0xE8])),
        ]
        try ByteToMessageDecoderVerifier.verifyDecoder(
            inputOutputPairs: [
                (Self.encoded([frames[0]]), [frames[0]]),
                (Self.encoded(Array(frames[1...])), Array(frames[1...])),
            ],
            decoderFactory: { WebSocketFrameDecoder() }
        )
    }

    @Test func protocolErrorsReachErrorCaught() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(WebSocketFrameDecoder()))
        #expect(throws: WebSocketError.controlFrameTooLarge) {
            try channel.writeInbound(ByteBuffer(bytes: [0x89, 0x7E, 0x00, 0x80]))
        }
        _ = try? channel.finish()
    }

    @Test func rsv1IsAcceptedOnlyWhenConfigured() throws {
        let deflate = EmbeddedChannel(handler: ByteToMessageHandler(WebSocketFrameDecoder(configuration: .init(allowedReservedBits: .rsv1))))
        try deflate.writeInbound(ByteBuffer(bytes: [0xC1, 0x01, 0x00]))
        let frame = try #require(try deflate.readInbound(as: WebSocketFrame.self))
        #expect(frame.rsv1)
        _ = try deflate.finish()

        let plain = EmbeddedChannel(handler: ByteToMessageHandler(WebSocketFrameDecoder()))
        #expect(throws: WebSocketError.reservedBitsNotNegotiated) { try plain.writeInbound(ByteBuffer(bytes: [0xC1, 0x01, 0x00])) }
        _ = try? plain.finish()
    }
}
