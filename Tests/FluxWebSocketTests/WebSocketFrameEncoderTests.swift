import FluxWebSocket
import NIOCore
import Testing

@Suite struct WebSocketFrameEncoderTests {
    static func encode(_ frame: WebSocketFrame) -> [UInt8] {
        var buffer = ByteBuffer()
        WebSocketFrameEncoder.encode(frame, into: &buffer)
        return buffer.bytes
    }

    @Test func rfcExamples() {
        #expect(Self.encode(WebSocketFrame(opcode: .text, data: ByteBuffer(string: "Hello"))) == [0x81, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F])
        let masked = WebSocketFrame(opcode: .text, maskKey: WebSocketMaskingKey(0x37, 0xFA, 0x21, 0x3D), data: ByteBuffer(string: "Hello"))
        #expect(Self.encode(masked) == [0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58])
        #expect(Self.encode(WebSocketFrame(fin: false, opcode: .text, data: ByteBuffer(string: "Hel"))) == [0x01, 0x03, 0x48, 0x65, 0x6C])
    }

    @Test func usesMinimalLengthEncodings() {
        #expect(Self.encode(WebSocketFrame(opcode: .binary, data: ByteBuffer(bytes: randomBytes(125))))[..<2] == [0x82, 0x7D])
        #expect(Self.encode(WebSocketFrame(opcode: .binary, data: ByteBuffer(bytes: randomBytes(126))))[..<4] == [0x82, 0x7E, 0x00, 0x7E])
        #expect(Self.encode(WebSocketFrame(opcode: .binary, data: ByteBuffer(bytes: randomBytes(65535))))[..<4] == [0x82, 0x7E, 0xFF, 0xFF])
        #expect(Self.encode(WebSocketFrame(opcode: .binary, data: ByteBuffer(bytes: randomBytes(65536))))[..<10] == [0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0])
    }

    @Test func headerSize() {
        #expect(WebSocketFrameEncoder.headerSize(payloadLength: 0, masked: false) == 2)
        #expect(WebSocketFrameEncoder.headerSize(payloadLength: 125, masked: true) == 6)
        #expect(WebSocketFrameEncoder.headerSize(payloadLength: 126, masked: false) == 4)
        #expect(WebSocketFrameEncoder.headerSize(payloadLength: 65536, masked: true) == 14)
    }

    @Test func writesReservedBits() {
        #expect(Self.encode(WebSocketFrame(rsv1: true, opcode: .text, data: ByteBuffer()))[0] == 0xC1)
        #expect(Self.encode(WebSocketFrame(fin: false, rsv2: true, rsv3: true, opcode: .binary, data: ByteBuffer()))[0] == 0x32)
    }

    @Test func maskingLeavesTheFramesDataAlone() {
        let data = ByteBuffer(bytes: randomBytes(40))
        let frame = WebSocketFrame(opcode: .binary, maskKey: WebSocketMaskingKey(1, 2, 3, 4), data: data)
        _ = Self.encode(frame)
        #expect(frame.data == data)
    }

    @Test func appendsAfterExistingBytesAndRespectsReaderIndex() {
        var buffer = ByteBuffer(bytes: [0xAA, 0xBB])
        buffer.moveReaderIndex(forwardBy: 1)
        WebSocketFrameEncoder.encode(WebSocketFrame(opcode: .binary, maskKey: WebSocketMaskingKey(0xFF, 0, 0xFF, 0), data: ByteBuffer(bytes: [1, 2, 3])), into: &buffer)
        #expect(buffer.bytes == [0xBB, 0x82, 0x83, 0xFF, 0, 0xFF, 0, 0xFE, 2, 0xFC])
    }

    @Test func encodeOnceAllocatesExactly() {
        let frame = WebSocketFrame(opcode: .text, data: ByteBuffer(string: "shared"))
        let bytes = WebSocketFrameEncoder.encode(frame, allocator: ByteBufferAllocator())
        #expect(bytes.bytes == [0x81, 0x06] + Array("shared".utf8))
    }

    /// A payload written after reserved room becomes the same frame `encode` makes, at every length form, with the
    /// payload bytes left where they were (no copy).
    @Test func framesAPayloadInPlace() {
        for length in [0, 1, 125, 126, 65535, 65536] {
            let payload = randomBytes(length, seed: UInt64(length))
            var buffer = ByteBuffer(bytes: [0xAA])  // bytes before the room stay out of the frame
            buffer.moveReaderIndex(forwardBy: 1)
            buffer.writeRepeatingByte(0, count: WebSocketFrameEncoder.maxUnmaskedHeaderSize)
            let payloadIndex = buffer.writerIndex
            buffer.writeBytes(payload)
            WebSocketFrameEncoder.frame(&buffer, reservedHeaderBytes: WebSocketFrameEncoder.maxUnmaskedHeaderSize, opcode: .text)
            #expect(buffer.bytes == Self.encode(WebSocketFrame(opcode: .text, data: ByteBuffer(bytes: payload))), "length \(length)")
            #expect(buffer.readerIndex + WebSocketFrameEncoder.headerSize(payloadLength: length, masked: false) == payloadIndex)
        }
    }
}
