import FluxWebSocket
import NIOCore
import Testing

@Suite struct WebSocketDeflateCompressorTests {
    static func compress(_ text: String, with compressor: WebSocketDeflateCompressor) -> [UInt8] {
        compressor.compress(ByteBuffer(string: text)).bytes
    }

    /// RFC 7692 §7.2.3.1: "Hello" compresses to f2 48 cd c9 c9 07 00.
    @Test func reproducesTheRFCExample() {
        let compressor = WebSocketDeflateCompressor(configuration: .init())
        #expect(Self.compress("Hello", with: compressor) == [0xF2, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00])
    }

    /// RFC 7692 §7.2.3.2: with context takeover the second "Hello" refers back to the first.
    @Test func contextTakeoverReproducesTheRFCExample() {
        let compressor = WebSocketDeflateCompressor(configuration: .init())
        _ = Self.compress("Hello", with: compressor)
        #expect(Self.compress("Hello", with: compressor) == [0xF2, 0x00, 0x11, 0x00, 0x00])
    }

    @Test func noContextTakeoverGivesTheSameBytesEveryTime() {
        let compressor = WebSocketDeflateCompressor(configuration: .init(noContextTakeover: true))
        #expect(Self.compress("Hello", with: compressor) == [0xF2, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00])
        #expect(Self.compress("Hello", with: compressor) == [0xF2, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00])
    }

    /// RFC 7692 §7.2.3.6: an empty message compresses to a single 00 byte.
    @Test func emptyMessage() {
        let compressor = WebSocketDeflateCompressor(configuration: .init())
        #expect(Self.compress("", with: compressor) == [0x00])
    }

    @Test(arguments: [8, 9, 12, 15])
    func roundTripsLargeInputAtEveryWindow(windowBits: Int) throws {
        let compressor = WebSocketDeflateCompressor(configuration: .init(windowBits: windowBits))
        let decompressor = WebSocketDeflateDecompressor(configuration: .init(windowBits: windowBits))
        for seed in 0..<3 {
            let text = (0..<5000).map { "line \($0 % (97 + seed)) of the log\n" }.joined()
            let compressed = compressor.compress(ByteBuffer(string: text))
            #expect(compressed.readableBytes < text.utf8.count / 4)
            var output = ByteBuffer()
            try decompressor.decompress(compressed, into: &output, limit: 1 << 24)
            try decompressor.finishMessage(into: &output, limit: 1 << 24)
            #expect(output == ByteBuffer(string: text))
        }
    }

    @Test func incompressibleDataRoundTrips() throws {
        let data = ByteBuffer(bytes: randomBytes(200_000))
        let compressor = WebSocketDeflateCompressor(configuration: .init(noContextTakeover: true))
        let decompressor = WebSocketDeflateDecompressor(configuration: .init(noContextTakeover: true))
        var output = ByteBuffer()
        try decompressor.decompress(compressor.compress(data), into: &output, limit: 1 << 20)
        try decompressor.finishMessage(into: &output, limit: 1 << 20)
        #expect(output == data)
    }
}
