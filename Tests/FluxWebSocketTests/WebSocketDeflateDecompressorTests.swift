import FluxWebSocket
import NIOCore
import Testing

@Suite struct WebSocketDeflateDecompressorTests {
    static func inflate(_ pieces: [[UInt8]], with decompressor: WebSocketDeflateDecompressor, limit: Int = 1 << 20) throws -> String {
        var output = ByteBuffer()
        for piece in pieces {
            try decompressor.decompress(ByteBuffer(bytes: piece), into: &output, limit: limit)
        }
        try decompressor.finishMessage(into: &output, limit: limit)
        return String(buffer: output)
    }

    static func make(noContextTakeover: Bool = false) -> WebSocketDeflateDecompressor {
        WebSocketDeflateDecompressor(configuration: .init(noContextTakeover: noContextTakeover))
    }

    /// RFC 7692 §7.2.3.1, whole and split across two frames.
    @Test func rfcHello() throws {
        #expect(try Self.inflate([[0xF2, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00]], with: Self.make()) == "Hello")
        #expect(try Self.inflate([[0xF2, 0x48, 0xCD], [0xC9, 0xC9, 0x07, 0x00]], with: Self.make()) == "Hello")
    }

    /// RFC 7692 §7.2.3.2: the second message refers to the first one's window.
    @Test func rfcSharedWindow() throws {
        let decompressor = Self.make()
        #expect(try Self.inflate([[0xF2, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00]], with: decompressor) == "Hello")
        #expect(try Self.inflate([[0xF2, 0x00, 0x11, 0x00, 0x00]], with: decompressor) == "Hello")
    }

    /// RFC 7692 §7.2.3.3: a stored (uncompressed) block.
    @Test func rfcStoredBlock() throws {
        #expect(try Self.inflate([[0x00, 0x05, 0x00, 0xFA, 0xFF, 0x48, 0x65, 0x6C, 0x6C, 0x6F, 0x00]], with: Self.make()) == "Hello")
    }

    /// RFC 7692 §7.2.3.4: BFINAL set; the appended tail is then ignored and the next message starts afresh.
    @Test func rfcFinalBlock() throws {
        let decompressor = Self.make()
        #expect(try Self.inflate([[0xF3, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00, 0x00]], with: decompressor) == "Hello")
        #expect(try Self.inflate([[0xF2, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00]], with: decompressor) == "Hello")
    }

    /// RFC 7692 §7.2.3.5: two DEFLATE blocks in one message.
    @Test func rfcTwoBlocks() throws {
        #expect(try Self.inflate([[0xF2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xCA, 0xC9, 0xC9, 0x07, 0x00]], with: Self.make()) == "Hello")
    }

    /// RFC 7692 §7.2.3.6: an empty message.
    @Test func rfcEmpty() throws {
        #expect(try Self.inflate([[0x00]], with: Self.make()) == "")
    }

    @Test func noContextTakeoverResetsBetweenMessages() throws {
        let decompressor = Self.make(noContextTakeover: true)
        #expect(try Self.inflate([[0xF2, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00]], with: decompressor) == "Hello")
        // Refers to a window that was reset: invalid distance.
        #expect(throws: WebSocketError.compressionError) { try Self.inflate([[0xF2, 0x00, 0x11, 0x00, 0x00]], with: decompressor) }
    }

    @Test func rejectsGarbage() {
        #expect(throws: WebSocketError.compressionError) { try Self.inflate([[0xFF, 0xFF, 0xFF, 0xFF]], with: Self.make()) }
    }

    @Test func limitStopsABomb() throws {
        let bomb = WebSocketDeflateCompressor(configuration: .init()).compress(ByteBuffer(repeating: 0, count: 10_000_000))
        #expect(bomb.readableBytes < 20_000)
        var output = ByteBuffer()
        let decompressor = Self.make()
        #expect(throws: WebSocketError.messageTooLarge) { try decompressor.decompress(bomb, into: &output, limit: 65536) }
        #expect(output.readableBytes <= 65537)
    }

    @Test func limitCountsWhatTheOutputAlreadyHolds() throws {
        var output = ByteBuffer(string: "1234")
        let decompressor = Self.make()
        #expect(throws: WebSocketError.messageTooLarge) {
            try decompressor.decompress(ByteBuffer(bytes: [0xF2, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00]), into: &output, limit: 8)
            try decompressor.finishMessage(into: &output, limit: 8)
        }
        var exact = ByteBuffer(string: "123")
        let other = Self.make()
        try other.decompress(ByteBuffer(bytes: [0xF2, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00]), into: &exact, limit: 8)
        try other.finishMessage(into: &exact, limit: 8)
        #expect(String(buffer: exact) == "123Hello")
    }
}
