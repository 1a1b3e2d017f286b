import FluxWebSocket
import NIOCore
import Testing

@Suite struct WebSocketMaskingKeyTests {
    static func referenceMask(_ bytes: [UInt8], key: [UInt8], offset: Int = 0) -> [UInt8] {
        bytes.enumerated().map { $0.element ^ key[($0.offset + offset) % 4] }
    }

    @Test func keyBytesInWireOrder() {
        let key = WebSocketMaskingKey(0x37, 0xFA, 0x21, 0x3D)
        #expect(key.rawValue == 0x37FA_213D)
        #expect((0..<4).map { key[$0] } == [0x37, 0xFA, 0x21, 0x3D])
    }

    /// RFC 6455 §5.7: "Hello" masked with 37 fa 21 3d.
    @Test func rfcExample() {
        var buffer = ByteBuffer(string: "Hello")
        WebSocketMaskingKey(0x37, 0xFA, 0x21, 0x3D).apply(to: &buffer)
        #expect(buffer.bytes == [0x7F, 0x9F, 0x4D, 0x51, 0x58])
    }

    @Test(arguments: [0, 1, 3, 4, 7, 8, 9, 15, 16, 17, 31, 64, 1000])
    func matchesByteWiseReferenceForEveryLength(length: Int) {
        let keyBytes: [UInt8] = [0x01, 0x80, 0xFE, 0x5A]
        let key = WebSocketMaskingKey(keyBytes[0], keyBytes[1], keyBytes[2], keyBytes[3])
        let input = randomBytes(length, seed: UInt64(length))
        for offset in 0..<4 {
            var buffer = ByteBuffer(bytes: input)
            key.apply(to: &buffer, offset: offset)
            #expect(buffer.bytes == Self.referenceMask(input, key: keyBytes, offset: offset))
        }
    }

    @Test func offsetContinuesAcrossCalls() {
        let keyBytes: [UInt8] = [0xDE, 0xAD, 0xBE, 0xEF]
        let key = WebSocketMaskingKey(rawValue: 0xDEAD_BEEF)
        let input = randomBytes(101)
        for split in 0...input.count {
            var head = ByteBuffer(bytes: Array(input[..<split]))
            var tail = ByteBuffer(bytes: Array(input[split...]))
            key.apply(to: &head, offset: 0)
            key.apply(to: &tail, offset: split)
            #expect(head.bytes + tail.bytes == Self.referenceMask(input, key: keyBytes))
        }
    }

    @Test func maskingTwiceRestoresTheData() {
        let input = randomBytes(77)
        var buffer = ByteBuffer(bytes: input)
        let key = WebSocketMaskingKey.random()
        key.apply(to: &buffer)
        key.apply(to: &buffer)
        #expect(buffer.bytes == input)
    }

    @Test func masksOnlyTheReadableBytes() {
        var buffer = ByteBuffer(bytes: [1, 2, 3, 4, 5, 6])
        buffer.moveReaderIndex(forwardBy: 2)
        WebSocketMaskingKey(0xFF, 0xFF, 0xFF, 0xFF).apply(to: &buffer)
        buffer.moveReaderIndex(to: 0)
        #expect(buffer.bytes == [1, 2, 0xFC, 0xFB, 0xFA, 0xF9])
    }
}
