import FluxTesting
import FluxWebSocket
import NIOCore
import Testing

@Suite struct WebSocketFrameParserTests {
    /// Parses all frames in `bytes` fed in one piece.
    static func parseAll(_ bytes: [UInt8], configuration: WebSocketFrameParser.Configuration = .init()) throws -> [WebSocketFrame] {
        var parser = WebSocketFrameParser(configuration: configuration)
        var buffer = ByteBuffer(bytes: bytes)
        var frames: [WebSocketFrame] = []
        while case .frame(let frame) = try parser.parseStep(&buffer) { frames.append(frame) }
        #expect(buffer.readableBytes == 0)
        return frames
    }

    /// Parses `bytes` fed in chunks of `chunk` bytes, keeping leftovers as a cumulation buffer would.
    static func parseChunked(_ bytes: [UInt8], chunk: Int) throws -> [WebSocketFrame] {
        var parser = WebSocketFrameParser()
        var buffer = ByteBuffer()
        var frames: [WebSocketFrame] = []
        var index = 0
        while index < bytes.count {
            let end = min(index + chunk, bytes.count)
            buffer.writeBytes(bytes[index..<end])
            index = end
            while case .frame(let frame) = try parser.parseStep(&buffer) { frames.append(frame) }
        }
        return frames
    }

    static func expectError(_ bytes: [UInt8], _ expected: WebSocketError, configuration: WebSocketFrameParser.Configuration = .init()) {
        #expect(throws: expected) { try parseAll(bytes, configuration: configuration) }
    }

    // MARK: RFC 6455 §5.7 examples

    @Test func unmaskedText() throws {
        let frames = try Self.parseAll([0x81, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F])
        #expect(frames.count == 1)
        #expect(frames[0].fin && frames[0].opcode == .text && frames[0].maskKey == nil)
        #expect(frames[0].data == ByteBuffer(string: "Hello"))
    }

    @Test func maskedTextIsUnmasked() throws {
        let frames = try Self.parseAll([0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58])
        #expect(frames[0].maskKey == WebSocketMaskingKey(0x37, 0xFA, 0x21, 0x3D))
        #expect(frames[0].data == ByteBuffer(string: "Hello"))
    }

    @Test func fragmentedText() throws {
        let frames = try Self.parseAll([0x01, 0x03, 0x48, 0x65, 0x6C, 0x80, 0x02, 0x6C, 0x6F])
        #expect(frames.map(\.fin) == [false, true])
        #expect(frames.map(\.opcode) == [.text, .continuation])
    }

    @Test func pingAndPong() throws {
        let frames = try Self.parseAll([0x89, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F, 0x8A, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58])
        #expect(frames.map(\.opcode) == [.ping, .pong])
        #expect(frames[1].data == ByteBuffer(string: "Hello"))
    }

    @Test func sixteenBitLength() throws {
        let payload = randomBytes(256)
        let frames = try Self.parseAll([0x82, 0x7E, 0x01, 0x00] + payload)
        #expect(frames[0].data.bytes == payload)
    }

    @Test func sixtyFourBitLength() throws {
        let payload = randomBytes(65536)
        let frames = try Self.parseAll([0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0] + payload)
        #expect(frames[0].data.bytes == payload)
    }

    @Test func emptyPayloads() throws {
        let frames = try Self.parseAll([0x82, 0x00, 0x81, 0x80, 1, 2, 3, 4, 0x88, 0x00])
        #expect(frames.map(\.data.readableBytes) == [0, 0, 0])
        #expect(frames[1].maskKey == WebSocketMaskingKey(1, 2, 3, 4))
    }

    @Test func reservedBitsWhenNegotiated() throws {
        let configuration = WebSocketFrameParser.Configuration(allowedReservedBits: .rsv1)
        let frames = try Self.parseAll([0xC1, 0x01, 0x41], configuration: configuration)
        #expect(frames[0].rsv1 && !frames[0].rsv2 && !frames[0].rsv3)
    }

    // MARK: Any split

    @Test func acceptsInputSplitAtEveryByteBoundary() throws {
        var stream: [UInt8] = []
        let key = WebSocketMaskingKey(9, 8, 7, 6)
        var encoded = ByteBuffer()
        let payloads = [randomBytes(0), randomBytes(5, seed: 1), randomBytes(126, seed: 2), randomBytes(300, seed: 3), randomBytes(70000, seed: 4)]
        for (index, payload) in payloads.enumerated() {
            let frame = WebSocketFrame(fin: index % 2 == 0, opcode: .binary, maskKey: index % 2 == 0 ? key : nil, data: ByteBuffer(bytes: payload))
            WebSocketFrameEncoder.encode(frame, into: &encoded)
        }
        stream = encoded.bytes
        for chunk in [1, 2, 3, 5, 7, 13, 64, 1000, stream.count] {
            let frames = try Self.parseChunked(stream, chunk: chunk)
            #expect(frames.map(\.data.bytes) == payloads, "chunk size \(chunk)")
            #expect(frames.map(\.fin) == [true, false, true, false, true])
        }
    }

    @Test func splitInsideAHeaderAtEachPosition() throws {
        let bytes: [UInt8] = [0x82, 0xFE, 0x00, 0x80, 0xA, 0xB, 0xC, 0xD] + randomBytes(128)
        for split in 1..<bytes.count {
            var parser = WebSocketFrameParser()
            var buffer = ByteBuffer(bytes: Array(bytes[..<split]))
            guard case .needMoreData = try parser.parseStep(&buffer) else {
                Issue.record("frame before all bytes at split \(split)")
                continue
            }
            buffer.writeBytes(bytes[split...])
            guard case .frame(let frame) = try parser.parseStep(&buffer) else {
                Issue.record("no frame at split \(split)")
                continue
            }
            #expect(frame.data.readableBytes == 128)
        }
    }

    // MARK: Protocol errors

    @Test func rejectsReservedOpcodes() {
        for opcode: UInt8 in [0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF] {
            Self.expectError([0x80 | opcode, 0x00], .reservedOpcode)
        }
    }

    @Test func rejectsReservedBitsNotNegotiated() {
        Self.expectError([0xC1, 0x00], .reservedBitsNotNegotiated)
        Self.expectError([0xA1, 0x00], .reservedBitsNotNegotiated)
        Self.expectError([0x91, 0x00], .reservedBitsNotNegotiated)
        Self.expectError([0xA1, 0x00], .reservedBitsNotNegotiated, configuration: .init(allowedReservedBits: .rsv1))
    }

    @Test func rejectsRSV1OnControlFramesEvenWithDeflate() {
        Self.expectError([0xC9, 0x00], .reservedBitsNotNegotiated, configuration: .init(allowedReservedBits: .rsv1))
    }

    @Test func rejectsFragmentedControlFrames() {
        Self.expectError([0x09, 0x00], .fragmentedControlFrame)
        Self.expectError([0x08, 0x00], .fragmentedControlFrame)
    }

    @Test func rejectsControlFramesOver125Bytes() throws {
        Self.expectError([0x89, 0x7E, 0x00, 0x7E] + [UInt8](repeating: 0, count: 126), .controlFrameTooLarge)
        let frames = try Self.parseAll([0x89, 0x7D] + [UInt8](repeating: 0, count: 125))
        #expect(frames[0].data.readableBytes == 125)
    }

    @Test func rejectsNonMinimalLengths() {
        Self.expectError([0x82, 0x7E, 0x00, 0x7D], .nonMinimalLength)
        Self.expectError([0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF], .nonMinimalLength)
        Self.expectError([0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0, 0x05], .nonMinimalLength)
    }

    @Test func rejectsLengthWithTopBitSetAsSoonAsItsByteArrives() {
        var parser = WebSocketFrameParser()
        var buffer = ByteBuffer(bytes: [0x82, 0x7F, 0x80])
        #expect(throws: WebSocketError.lengthTopBitSet) { try parser.parseStep(&buffer) }
    }

    @Test func rejectsFramesOverTheMaximum() throws {
        let configuration = WebSocketFrameParser.Configuration(maxFrameSize: 1000)
        Self.expectError([0x82, 0x7E, 0x03, 0xE9], .frameTooLarge, configuration: configuration)
        Self.expectError([0x82, 0x7F, 0, 0, 0, 1, 0, 0, 0, 0], .frameTooLarge, configuration: configuration)
        Self.expectError([0x82, 0x7F, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF], .frameTooLarge)
        #expect(WebSocketError.frameTooLarge.closeCode == .messageTooBig)
        let frames = try Self.parseAll([0x82, 0x7E, 0x03, 0xE8] + [UInt8](repeating: 1, count: 1000), configuration: configuration)
        #expect(frames.count == 1)
    }

    @Test func failsBeforeTheRestOfTheHeaderArrives() {
        var parser = WebSocketFrameParser()
        var buffer = ByteBuffer(bytes: [0x89, 0xFE])
        #expect(throws: WebSocketError.controlFrameTooLarge) { try parser.parseStep(&buffer) }
    }

    @Test func staysFailed() {
        var parser = WebSocketFrameParser()
        var bad = ByteBuffer(bytes: [0x83, 0x00])
        #expect(throws: WebSocketError.reservedOpcode) { try parser.parseStep(&bad) }
        var good = ByteBuffer(bytes: [0x81, 0x00])
        #expect(throws: WebSocketError.reservedOpcode) { try parser.parseStep(&good) }
    }

    @Test func doesNotConsumeAnIncompleteHeader() throws {
        var parser = WebSocketFrameParser()
        var buffer = ByteBuffer(bytes: [0x82, 0x7E, 0x01])
        guard case .needMoreData = try parser.parseStep(&buffer) else {
            Issue.record("expected needMoreData")
            return
        }
        #expect(buffer.readableBytes == 3)
    }

    @Test func randomFramesRoundTrip() throws {
        var generator = SeededGenerator(seed: 7)
        var encoded = ByteBuffer()
        var expected: [WebSocketFrame] = []
        for _ in 0..<200 {
            let length = [0, 1, 125, 126, 127, 65535, 65536, Int.random(in: 0...3000, using: &generator)].randomElement(using: &generator)!
            let opcode: WebSocketOpcode = [.text, .binary, .continuation].randomElement(using: &generator)!
            let maskKey: WebSocketMaskingKey? = Bool.random(using: &generator) ? .random(using: &generator) : nil
            let frame = WebSocketFrame(fin: Bool.random(using: &generator), opcode: opcode, maskKey: maskKey, data: ByteBuffer(bytes: randomBytes(length, seed: generator.next())))
            expected.append(frame)
            WebSocketFrameEncoder.encode(frame, into: &encoded)
        }
        let frames = try Self.parseChunked(encoded.bytes, chunk: 4093)
        #expect(frames == expected)
    }
}
