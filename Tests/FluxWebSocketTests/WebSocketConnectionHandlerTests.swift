import FluxTesting
import FluxWebSocket
import NIOCore
import NIOEmbedded
import Testing

@Suite struct WebSocketConnectionHandlerTests {
    static let key = WebSocketMaskingKey(0x11, 0x22, 0x33, 0x44)

    /// A server-side (or client-side) connection handler on an embedded channel, as the upgraders install it.
    static func makeServer(
        pingInterval: Duration? = nil,
        pongTimeout: Duration = .seconds(10),
        deflate: WebSocketDeflateParameters? = nil,
        role: WebSocketRole = .server
    ) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        let configuration = WebSocketConnectionConfiguration(role: role, pingInterval: pingInterval, pongTimeout: pongTimeout)
        try WebSocketServerUpgrader.addHandlers(to: channel.pipeline.syncOperations, configuration: configuration, deflate: deflate)
        channel.connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: 1), promise: nil)
        return channel
    }

    /// Sends a masked client frame into the channel.
    static func send(_ frame: WebSocketFrame, to channel: EmbeddedChannel) throws {
        var frame = frame
        frame.maskKey = frame.maskKey ?? key
        var buffer = ByteBuffer()
        WebSocketFrameEncoder.encode(frame, into: &buffer)
        try channel.writeInbound(buffer)
    }

    /// Every frame the server wrote so far.
    static func sentFrames(_ channel: EmbeddedChannel) throws -> [WebSocketFrame] {
        var wire = ByteBuffer()
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { wire.writeImmutableBuffer(buffer) }
        var parser = WebSocketFrameParser(configuration: .init(allowedReservedBits: .rsv1))
        var frames: [WebSocketFrame] = []
        while case .frame(let frame) = try parser.parseStep(&wire) { frames.append(frame) }
        return frames
    }

    /// Closes the channel: our Close goes out, then the close timeout passes on the embedded clock.
    static func finish(_ channel: EmbeddedChannel, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let closed = channel.close()
        channel.embeddedEventLoop.advanceTime(by: .seconds(10))
        try expectCompleted(closed, on: channel, sourceLocation: sourceLocation)
    }

    /// Checks that an embedded future has completed successfully, without ever blocking a thread on it.
    static func expectCompleted(_ future: EventLoopFuture<Void>, on channel: EmbeddedChannel, sourceLocation: SourceLocation = #_sourceLocation) throws {
        channel.embeddedEventLoop.run()  // EmbeddedChannel completes some promises on its loop
        var result: Result<Void, any Error>?
        future.assumeIsolated().whenComplete { result = $0 }
        guard let result else {
            Issue.record("the future has not completed", sourceLocation: sourceLocation)
            return
        }
        try result.get()
    }

    static func closeCode(of frame: WebSocketFrame?) -> WebSocketCloseCode? {
        guard let frame, frame.opcode == .connectionClose else { return nil }
        return try? WebSocketClosePayload(parsing: frame.data).code
    }

    @Test func deliversMessagesAndAnswersPings() throws {
        let channel = try Self.makeServer()
        try Self.send(WebSocketFrame(fin: false, opcode: .text, data: ByteBuffer(string: "Hel")), to: channel)
        try Self.send(WebSocketFrame(opcode: .ping, data: ByteBuffer(string: "p")), to: channel)
        try Self.send(WebSocketFrame(opcode: .continuation, data: ByteBuffer(string: "lo")), to: channel)
        #expect(try channel.readInbound(as: WebSocketMessage.self) == WebSocketMessage(opcode: .text, data: ByteBuffer(string: "Hello")))
        #expect(try Self.sentFrames(channel) == [WebSocketFrame(opcode: .pong, data: ByteBuffer(string: "p"))])
        try Self.finish(channel)
    }

    /// A peer that sends pings and never reads the pongs: while our unsent bytes are past the high-water mark
    /// (the channel is not writable) no more frames are answered and the connection is not read; the rest are
    /// answered, in order, once it is writable again.
    @Test func aPingFloodIsAnsweredOnlyWhileTheChannelIsWritable() throws {
        let channel = try Self.makeServer()
        let counter = ReadCountingHandler()
        try channel.pipeline.syncOperations.addHandler(counter, position: .first)
        channel.isWritable = false
        var pings = ByteBuffer()
        for index in 0..<100 {
            var frame = WebSocketFrame(opcode: .ping, data: ByteBuffer(string: "\(index)"))
            frame.maskKey = Self.key
            WebSocketFrameEncoder.encode(frame, into: &pings)
        }
        try channel.writeInbound(pings)
        #expect(try Self.sentFrames(channel).isEmpty, "no pong queued while the channel is not writable")
        channel.read()
        #expect(counter.reads == 0, "the connection is not read while its answers cannot be written")
        channel.isWritable = true
        channel.pipeline.fireChannelWritabilityChanged()
        let pongs = try Self.sentFrames(channel)
        #expect(pongs.map { String(buffer: $0.data) } == (0..<100).map { "\($0)" })
        #expect(counter.reads == 1, "the held read goes out once the channel is writable")
        try Self.finish(channel)
    }

    /// Records how the channel is asked to close, ahead of every other handler.
    final class CloseModeRecorder: ChannelOutboundHandler {
        typealias OutboundIn = NIOAny
        var modes: [CloseMode] = []

        func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
            modes.append(mode)
            context.close(mode: mode, promise: promise)
        }
    }

    /// Regression (Autobahn 3.4 and 5.14, octet-wise chops): failing the connection while the peer is still
    /// sending closed TCP at once; the unread input made the kernel send a reset, and the reset made the
    /// peer drop our Close frame unread. Now our side closes its output first (FIN) and reads on.
    @Test func failingTheConnectionHalfClosesFirstSoThePeerReadsTheClose() throws {
        let channel = try Self.makeServer()
        let recorder = CloseModeRecorder()
        try channel.pipeline.syncOperations.addHandler(recorder, position: .first)
        // The error also reaches the end of the pipeline, where the embedded channel rethrows it.
        #expect(throws: WebSocketError.reservedOpcode) {
            try Self.send(WebSocketFrame(opcode: WebSocketOpcode(rawValue: 0x3)!, data: ByteBuffer()), to: channel)
        }
        channel.embeddedEventLoop.run()
        #expect(try Self.sentFrames(channel).map(Self.closeCode(of:)) == [.protocolError])
        #expect(recorder.modes.first == .output, "\(recorder.modes)")
        channel.embeddedEventLoop.advanceTime(by: .seconds(10))
        #expect(!channel.isActive)
    }

    @Test func writesMessagesAsFrames() throws {
        let channel = try Self.makeServer()
        try channel.writeOutbound(outbound(opcode: .binary, data: ByteBuffer(bytes: [1, 2, 3])))
        #expect(try Self.sentFrames(channel) == [WebSocketFrame(opcode: .binary, data: ByteBuffer(bytes: [1, 2, 3]))])
        try Self.finish(channel)
    }

    @Test func compressesAndInflatesWithDeflate() throws {
        let channel = try Self.makeServer(deflate: WebSocketDeflateParameters(serverNoContextTakeover: true))
        try channel.writeOutbound(outbound(opcode: .text, data: ByteBuffer(string: "Hello")))
        let sent = try Self.sentFrames(channel)
        #expect(sent == [WebSocketFrame(rsv1: true, opcode: .text, data: ByteBuffer(bytes: [0xF2, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00]))])

        try Self.send(WebSocketFrame(rsv1: true, opcode: .text, data: ByteBuffer(bytes: [0xF2, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00])), to: channel)
        #expect(try channel.readInbound(as: WebSocketMessage.self) == WebSocketMessage(opcode: .text, data: ByteBuffer(string: "Hello")))
        try Self.finish(channel)
    }

    @Test func protocolErrorSendsCloseAndClosesTCP() throws {
        let channel = try Self.makeServer()
        var unmasked = ByteBuffer()
        WebSocketFrameEncoder.encode(WebSocketFrame(opcode: .text, data: ByteBuffer(string: "x")), into: &unmasked)
        try channel.writeInbound(unmasked)
        #expect(Self.closeCode(of: try Self.sentFrames(channel).last) == .protocolError)
        #expect(!channel.isActive)
    }

    @Test func parserErrorSendsCloseAndClosesTCP() throws {
        let channel = try Self.makeServer()
        #expect(throws: WebSocketError.nonMinimalLength) { try channel.writeInbound(ByteBuffer(bytes: [0x82, 0xFE, 0x00, 0x01])) }
        #expect(Self.closeCode(of: try Self.sentFrames(channel).last) == .protocolError)
        #expect(!channel.isActive)
    }

    @Test func invalidUTF8Closes1007() throws {
        let channel = try Self.makeServer()
        try Self.send(WebSocketFrame(opcode: .text, data: ByteBuffer(bytes: [0xFF])), to: channel)
        #expect(Self.closeCode(of: try Self.sentFrames(channel).last) == .invalidFramePayloadData)
        #expect(!channel.isActive)
    }

    @Test func keepAlivePingsThenClosesASilentPeer() throws {
        let channel = try Self.makeServer(pingInterval: .seconds(30), pongTimeout: .seconds(10))
        channel.embeddedEventLoop.advanceTime(by: .seconds(29))
        #expect(try Self.sentFrames(channel).isEmpty)
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        let ping = try #require(try Self.sentFrames(channel).first)
        #expect(ping.opcode == .ping)
        // Answered: the next ping comes 30 s later, not a close.
        try Self.send(WebSocketFrame(opcode: .pong, data: ping.data), to: channel)
        channel.embeddedEventLoop.advanceTime(by: .seconds(29))
        #expect(try Self.sentFrames(channel).isEmpty)
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        #expect(try Self.sentFrames(channel).first?.opcode == .ping)
        // Not answered: closed with 1001 when the pong timeout passes.
        channel.embeddedEventLoop.advanceTime(by: .seconds(10))
        #expect(Self.closeCode(of: try Self.sentFrames(channel).last) == .goingAway)
        #expect(!channel.isActive)
    }

    @Test func closingTheChannelRunsTheClosingHandshake() throws {
        let channel = try Self.makeServer()
        let closed = channel.close()
        #expect(Self.closeCode(of: try Self.sentFrames(channel).last) == .normalClosure)
        #expect(channel.isActive, "waits for the peer's Close")
        #expect(throws: ChannelError.outputClosed) { try channel.writeOutbound(outbound(opcode: .text, data: ByteBuffer())) }
        try Self.send(WebSocketFrame(opcode: .connectionClose, data: ByteBuffer(bytes: [0x03, 0xE8])), to: channel)
        #expect(!channel.isActive)
        try Self.expectCompleted(closed, on: channel)
    }

    @Test func closeHandshakeTimesOut() throws {
        let channel = try Self.makeServer()
        let closed = channel.close()
        channel.embeddedEventLoop.advanceTime(by: .seconds(4))
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        #expect(!channel.isActive)
        try Self.expectCompleted(closed, on: channel)
    }

    /// Records the events the connection handler fires inbound.
    final class ClosingRecorder: ChannelInboundHandler {
        typealias InboundIn = WebSocketMessage
        var codes: [WebSocketCloseCode] = []

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if let closing = event as? WebSocketClosingEvent { codes.append(closing.code) }
        }
    }

    /// The application learns once, when the Close frame goes out, which code the connection ends with: ours, the
    /// echoed peer's, or the protocol error's.
    @Test func theClosingEventCarriesTheCloseCode() throws {
        let cases: [(String, (EmbeddedChannel) throws -> Void, WebSocketCloseCode)] = [
            ("our close", { channel in
                channel.pipeline.triggerUserOutboundEvent(WebSocketCloseRequest(code: WebSocketCloseCode(rawValue: 4409), reason: "x"), promise: nil)
            }, WebSocketCloseCode(rawValue: 4409)),
            ("the peer's close", { channel in
                try Self.send(WebSocketFrame(opcode: .connectionClose, data: ByteBuffer(bytes: [0x0F, 0xA0])), to: channel)
            }, WebSocketCloseCode(rawValue: 4000)),
            ("an empty close", { channel in
                try Self.send(WebSocketFrame(opcode: .connectionClose, data: ByteBuffer()), to: channel)
            }, .noStatusReceived),
            ("a protocol error", { channel in
                _ = try? channel.writeInbound(ByteBuffer(bytes: [0x82, 0xFE, 0x00, 0x01]))
            }, .protocolError),
        ]
        for (name, act, code) in cases {
            let channel = try Self.makeServer()
            let recorder = ClosingRecorder()
            try channel.pipeline.syncOperations.addHandler(recorder)
            try act(channel)
            // A second close request changes nothing.
            channel.pipeline.triggerUserOutboundEvent(WebSocketCloseRequest(code: .goingAway), promise: nil)
            #expect(recorder.codes == [code], "\(name)")
            #expect(Self.closeCode(of: try Self.sentFrames(channel).last) == (code == .noStatusReceived ? nil : code), "\(name)")
            channel.embeddedEventLoop.advanceTime(by: .seconds(10))
        }
    }

    /// A frame encoded once for many connections is written as it is.
    @Test func anEncodedFrameIsWrittenAsItIs() throws {
        let channel = try Self.makeServer()
        let frame = WebSocketPreparedMessage(opcode: .text, data: ByteBuffer(string: "shared")).plainFrame
        try channel.writeOutbound(WebSocketOutboundMessage.encodedFrame(frame))
        #expect(try channel.readOutbound(as: ByteBuffer.self) == frame)
        try Self.finish(channel)
    }

    /// What applications write travels through the pipeline inline in `NIOAny` (three words), as a message does:
    /// no allocation per write.
    @Test func anOutboundMessageFitsInlineInTheExistential() {
        #expect(MemoryLayout<WebSocketOutboundMessage>.size <= 3 * MemoryLayout<Int>.size)
    }

    @Test func peerCloseIsEchoed() throws {
        let channel = try Self.makeServer()
        try Self.send(WebSocketFrame(opcode: .connectionClose, data: ByteBuffer(bytes: [0x0F, 0xA0])), to: channel)
        #expect(Self.closeCode(of: try Self.sentFrames(channel).last) == WebSocketCloseCode(rawValue: 4000))
        #expect(!channel.isActive)
    }

    // MARK: Bytes in and out

    /// Frames cut anywhere (one byte at a time, in two halves at every point, in random pieces) come out as the
    /// same messages, pings answered in between.
    @Test func parsesInputSplitAnywhere() throws {
        var wire = ByteBuffer()
        let fragments = [
            WebSocketFrame(fin: false, opcode: .binary, maskKey: Self.key, data: ByteBuffer(bytes: randomBytes(300))),
            WebSocketFrame(opcode: .ping, maskKey: Self.key, data: ByteBuffer(string: "p")),
            WebSocketFrame(opcode: .continuation, maskKey: Self.key, data: ByteBuffer(bytes: randomBytes(3000, seed: 5))),
            WebSocketFrame(opcode: .text, maskKey: Self.key, data: ByteBuffer(string: "Hello")),
        ]
        for frame in fragments { WebSocketFrameEncoder.encode(frame, into: &wire) }
        let bytes = Array(wire.readableBytesView)
        let expected = [
            WebSocketMessage(opcode: .binary, data: ByteBuffer(bytes: randomBytes(300) + randomBytes(3000, seed: 5))),
            WebSocketMessage(opcode: .text, data: ByteBuffer(string: "Hello")),
        ]
        var generator = SystemRandomNumberGenerator()
        var splits: [[Int]] = [Array(1..<bytes.count)]  // every byte on its own
        for cut in stride(from: 1, to: bytes.count, by: 97) { splits.append([cut]) }
        for _ in 0..<20 { splits.append((0..<8).map { _ in Int.random(in: 1..<bytes.count, using: &generator) }.sorted()) }
        for cuts in splits {
            let channel = try Self.makeServer()
            var start = 0
            for end in Set(cuts + [bytes.count]).sorted() where end > start {
                try channel.writeInbound(ByteBuffer(bytes: bytes[start..<end]))
                start = end
            }
            var messages: [WebSocketMessage] = []
            while let message = try channel.readInbound(as: WebSocketMessage.self) { messages.append(message) }
            #expect(messages == expected, "cut at \(cuts.prefix(8))")
            #expect(try Self.sentFrames(channel) == [WebSocketFrame(opcode: .pong, data: ByteBuffer(string: "p"))])
            try Self.finish(channel)
        }
    }

    /// Feeds more bytes into the pipeline from inside the delivery of the first message (a nested `channelRead`).
    final class ReentrantFeeder: ChannelInboundHandler {
        typealias InboundIn = WebSocketMessage
        var more: ByteBuffer?
        var received: [WebSocketMessage] = []

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            received.append(unwrapInboundIn(data))
            if let bytes = more.take() { context.pipeline.syncOperations.fireChannelRead(NIOAny(bytes)) }
        }
    }

    /// Bytes fed again while a message is being delivered are parsed after the bytes already read, in order.
    @Test func bytesFedDuringADeliveryComeAfterTheCurrentRead() throws {
        let channel = try Self.makeServer()
        let feeder = ReentrantFeeder()
        try channel.pipeline.syncOperations.addHandler(feeder)
        var wire = ByteBuffer()
        for text in ["A", "B-" + String(repeating: "b", count: 200), "C"] {
            WebSocketFrameEncoder.encode(WebSocketFrame(opcode: .text, maskKey: Self.key, data: ByteBuffer(string: text)), into: &wire)
        }
        let cut = 7 + 20  // frame A (7 bytes) and the start of frame B
        feeder.more = wire.getSlice(at: cut, length: wire.readableBytes - cut)
        try channel.writeInbound(wire.getSlice(at: 0, length: cut)!)
        #expect(feeder.received.map { String(buffer: $0.data) } == ["A", "B-" + String(repeating: "b", count: 200), "C"])
        try Self.finish(channel)
    }

    /// After a protocol error nothing more is read: the frame behind the bad one in the same read, and later
    /// reads, deliver no message and no second error.
    @Test func nothingIsReadAfterAProtocolError() throws {
        let channel = try Self.makeServer()
        var wire = ByteBuffer(bytes: [0x82, 0xFE, 0x00, 0x01])  // a non-minimal 16-bit length
        WebSocketFrameEncoder.encode(WebSocketFrame(opcode: .text, maskKey: Self.key, data: ByteBuffer(string: "late")), into: &wire)
        #expect(throws: WebSocketError.nonMinimalLength) { try channel.writeInbound(wire) }
        try Self.send(WebSocketFrame(opcode: .text, data: ByteBuffer(string: "later")), to: channel)
        #expect(try channel.readInbound(as: WebSocketMessage.self) == nil)
        #expect(try Self.sentFrames(channel).map(Self.closeCode(of:)) == [.protocolError])
    }

    /// RSV1 means a compressed message only when permessage-deflate was negotiated; otherwise it fails the
    /// connection with 1002.
    @Test func rsv1WithoutDeflateIsAProtocolError() throws {
        let channel = try Self.makeServer()
        #expect(throws: WebSocketError.reservedBitsNotNegotiated) {
            try Self.send(WebSocketFrame(rsv1: true, opcode: .text, data: ByteBuffer(string: "x")), to: channel)
        }
        #expect(try Self.sentFrames(channel).map(Self.closeCode(of:)) == [.protocolError])
    }

    @Test func theServerWritesUnmaskedFrames() throws {
        let channel = try Self.makeServer()
        try channel.writeOutbound(outbound(opcode: .text, data: ByteBuffer(string: "Hello")))
        #expect(try channel.readOutbound(as: ByteBuffer.self)?.bytes == [0x81, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F])
        try Self.finish(channel)
    }

    /// A large unmasked payload is not copied: its header goes out in a buffer of its own, then the payload itself.
    @Test func largePayloadsAreWrittenWithoutCopying() throws {
        let channel = try Self.makeServer()
        let payload = ByteBuffer(bytes: randomBytes(5000))
        try channel.writeOutbound(outbound(opcode: .binary, data: payload))
        #expect(try channel.readOutbound(as: ByteBuffer.self)?.bytes == [0x82, 0x7E, 0x13, 0x88])
        #expect(try channel.readOutbound(as: ByteBuffer.self) == payload)
        try Self.finish(channel)
    }

    @Test func theClientMasksEveryFrameWithAFreshKey() throws {
        let channel = try Self.makeServer(role: .client)
        let payload = ByteBuffer(bytes: randomBytes(3000))
        try channel.writeOutbound(outbound(opcode: .binary, data: payload))
        try channel.writeOutbound(outbound(opcode: .binary, data: payload))
        var wire = ByteBuffer()
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { wire.writeImmutableBuffer(buffer) }
        var parser = WebSocketFrameParser()
        guard case .frame(let first) = try parser.parseStep(&wire), case .frame(let second) = try parser.parseStep(&wire) else {
            Issue.record("expected two frames")
            return
        }
        #expect(first.maskKey != nil && second.maskKey != nil && first.maskKey != second.maskKey)
        #expect(first.data == payload && second.data == payload)
        try Self.finish(channel)
    }
}

/// A data message as the connection handler takes it outbound.
private func outbound(opcode: WebSocketOpcode, data: ByteBuffer) -> WebSocketOutboundMessage {
    .message(WebSocketMessage(opcode: opcode, data: data))
}
