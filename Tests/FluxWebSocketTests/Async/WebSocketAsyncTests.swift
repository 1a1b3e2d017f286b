import FluxTesting
@testable import FluxWebSocket
import NIOCore
import NIOHTTP1
import NIOPosix
import Testing

/// The async API: a server yielding ``WebSocketChannel``s, a client connecting, messages as an `AsyncSequence`,
/// sends with backpressure, close codes chosen by either side, refused handshakes.
@Suite struct WebSocketAsyncTests {
    /// An echo server on the async API; `onConnection` may replace the echo for one test.
    func withEchoServer(
        deflate: Bool = false, _ body: (Int) async throws -> Void
    ) async throws {
        let server = try await WebSocketServer.bind(
            host: "127.0.0.1", port: 0,
            handshake: WebSocketServerHandshake(deflate: deflate ? WebSocketDeflateOptions() : nil),
            configuration: WebSocketConnectionConfiguration(role: .server, pingInterval: nil)
        )
        let port = try #require(server.channel.localAddress?.port)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                try await server.executeThenClose { connections in
                    try await withThrowingDiscardingTaskGroup { connectionGroup in
                        for try await pending in connections {
                            connectionGroup.addTask {
                                guard let connection = try? await pending.handshake() else { return }
                                try? await connection.executeThenClose { inbound, outbound in
                                    for try await message in inbound {
                                        if message.isText, String(buffer: message.data) == "close-4000" {
                                            try await outbound.close(code: WebSocketCloseCode(rawValue: 4000), reason: "asked to")
                                            return
                                        }
                                        try await outbound.send(message)
                                    }
                                }
                            }
                        }
                    }
                }
            }
            defer { group.cancelAll() }
            try await body(port)
            server.channel.close(promise: nil)
        }
    }

    @Test(arguments: [false, true])
    func messagesGoBothWaysAsSequences(deflate: Bool) async throws {
        try await withEchoServer(deflate: deflate) { port in
            let socket = try await WebSocketClient.connect(
                to: "127.0.0.1", port: port, path: "/echo?x=1",
                handshake: WebSocketClientHandshake(deflate: deflate ? WebSocketDeflateOptions() : nil),
                configuration: WebSocketConnectionConfiguration(role: .client, pingInterval: nil)
            )
            #expect((socket.deflate != nil) == deflate)
            #expect(socket.path == "/echo?x=1")
            let received = try await socket.executeThenClose { inbound, outbound in
                var iterator = inbound.makeAsyncIterator()
                var received: [String] = []
                for index in 0..<200 {
                    try await outbound.send(text: "message \(index) " + String(repeating: "x", count: index * 10))
                    if let message = try await iterator.next() { received.append(String(buffer: message.data)) }
                }
                try await outbound.send(binary: ByteBuffer(bytes: [0, 1, 2, 255]))
                let binary = try await iterator.next()
                #expect(binary?.opcode == .binary && binary?.data == ByteBuffer(bytes: [0, 1, 2, 255]))
                return received
            }
            #expect(received.count == 200)
            #expect(received.first == "message 0 " && received.last?.hasPrefix("message 199 ") == true)
            #expect(await socket.closeCode() == .normalClosure, "executeThenClose ends with a clean 1000")
        }
    }

    @Test func eitherSideChoosesTheCloseCode() async throws {
        try await withEchoServer { port in
            let socket = try await WebSocketClient.connect(to: "127.0.0.1", port: port)
            try await socket.executeThenClose { inbound, outbound in
                try await outbound.send(text: "close-4000")
                for try await _ in inbound {}  // ends when the server's close completes
            }
            #expect(await socket.closeCode() == WebSocketCloseCode(rawValue: 4000))
            #expect(await socket.receivedClose() == WebSocketClosePayload(code: WebSocketCloseCode(rawValue: 4000), reason: "asked to"))

            let other = try await WebSocketClient.connect(to: "127.0.0.1", port: port)
            #expect(await other.receivedClose() == nil)
            try await other.executeThenClose { _, outbound in
                try await outbound.close(code: .goingAway, reason: "bye")
            }
            #expect(await other.closeCode() == .goingAway)
            #expect(await other.receivedClose() == WebSocketClosePayload(code: .goingAway), "the server's answer: our code, no reason")
        }
    }

    @Test func aRefusedHandshakeIsAClearError() async throws {
        try await withEchoServer { port in
            // Our server refuses a plain GET; the client says so.
            let plain = try await RawTCPConnection.connect(port: port)
            try await plain.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(try await plain.readUntil("\r\n\r\n")?.hasPrefix("HTTP/1.1 400") == true)
            await plain.close()
        }
        // A server that answers 404 to everything, and closes.
        let refused = await #expect(throws: WebSocketClientError.self) {
            try await Self.withAnsweringServer("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n") { port in
                _ = try await WebSocketClient.connect(to: "127.0.0.1", port: port)
            }
        }
        #expect(refused?.code == .refused && refused?.status == .notFound)
    }

    /// A refusal is reported from the answer, not when the server closes: a proxy that keeps the connection open
    /// after its 401 or 502 does not hold the client.
    @Test(arguments: [HTTPResponseStatus.unauthorized, .badGateway])
    func aRefusalOnAConnectionKeptOpenReportsItsStatus(status: HTTPResponseStatus) async throws {
        // A client that waited for the close would end with a handshake timeout (no status) instead.
        let refused = await #expect(throws: WebSocketClientError.self) {
            try await Self.withAnsweringServer("HTTP/1.1 \(status.code) \(status.reasonPhrase)\r\nContent-Length: 2\r\n\r\n{}", close: false) { port in
                _ = try await WebSocketClient.connect(to: "127.0.0.1", port: port, handshakeTimeout: .seconds(30))
            }
        }
        #expect(refused?.code == .refused && refused?.status == status)
        #expect(refused?.description.contains("HTTP \(status.code)") == true, "\(String(describing: refused))")
    }

    /// A `101` that fails the handshake checks (RFC 6455 §4.1) is a refusal too, with status 101.
    @Test func aFailing101IsARefusalWithItsStatus() async throws {
        let answer = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: wrong\r\n\r\n"
        let refused = await #expect(throws: WebSocketClientError.self) {
            try await Self.withAnsweringServer(answer, close: false) { port in
                _ = try await WebSocketClient.connect(to: "127.0.0.1", port: port, handshakeTimeout: .seconds(30))
            }
        }
        #expect(refused?.code == .refused && refused?.status == .switchingProtocols)
        #expect(refused?.description.contains("Sec-WebSocket-Accept") == true, "\(String(describing: refused))")
    }

    @Test func anAnswerThatIsNotHTTPIsInvalid() async throws {
        let invalid = await #expect(throws: WebSocketClientError.self) {
            try await Self.withAnsweringServer("SSH-2.0-OpenSSH_9.2\r\n\r\n", close: false) { port in
                _ = try await WebSocketClient.connect(to: "127.0.0.1", port: port, handshakeTimeout: .seconds(30))
            }
        }
        #expect(invalid?.code == .invalidResponse && invalid?.status == nil)
    }

    /// A server that takes the connection and never answers fails the connect after the handshake timeout.
    @Test func aServerThatNeverAnswersTimesOut() async throws {
        let started = ContinuousClock.now
        let timedOut = await #expect(throws: WebSocketClientError.self) {
            try await Self.withAnsweringServer(nil) { port in
                _ = try await WebSocketClient.connect(to: "127.0.0.1", port: port, handshakeTimeout: .milliseconds(300))
            }
        }
        #expect(timedOut?.code == .handshakeTimedOut)
        #expect(timedOut?.description.contains("did not answer the WebSocket handshake") == true)
        #expect(ContinuousClock.now - started < .seconds(120), "bounded (the server never answers)")
    }

    /// A handshake that times out before its request is even written (a loaded machine, here a timeout of 1 ns)
    /// says so: not "I/O on closed channel" from the write that the timeout's close cut off.
    @Test func aTimeoutBeforeTheRequestIsWrittenIsStillATimeout() async throws {
        for _ in 0..<20 {
            let timedOut = await #expect(throws: WebSocketClientError.self) {
                try await Self.withAnsweringServer(nil) { port in
                    _ = try await WebSocketClient.connect(to: "127.0.0.1", port: port, handshakeTimeout: .nanoseconds(1))
                }
            }
            #expect(timedOut?.code == .handshakeTimedOut)
        }
    }

    /// Cancelling the connecting task ends a handshake that the server does not answer, at once.
    @Test func cancellingTheTaskEndsTheHandshake() async throws {
        try await Self.withAnsweringServer(nil) { port in
            let connecting = Task { try await WebSocketClient.connect(to: "127.0.0.1", port: port, handshakeTimeout: .seconds(60)) }
            try await Task.sleep(for: .milliseconds(200))
            connecting.cancel()
            // Cancellation, not the 60 s handshake timeout (which throws WebSocketClientError), ends it.
            await #expect(throws: CancellationError.self) { _ = try await connecting.value }
        }
    }

    /// The transport's handlers go in front of HTTP and the request waits for it; its failure is thrown as it is.
    @Test func aTransportIsSetUpBeforeTheRequest() async throws {
        struct TransportFailure: Error {}
        try await withEchoServer { port in
            await #expect(throws: TransportFailure.self) {
                _ = try await WebSocketClient.connect(to: "127.0.0.1", port: port, transport: { channel in
                    channel.eventLoop.makeFailedFuture(TransportFailure())
                })
            }
            let socket = try await WebSocketClient.connect(to: "127.0.0.1", port: port, transport: { channel in
                try channel.pipeline.syncOperations.addHandler(ReadCountingHandler())
                return channel.eventLoop.scheduleTask(in: .milliseconds(100)) {}.futureResult
            })
            let reads = try await socket.asyncChannel.channel.eventLoop.submit {
                try socket.asyncChannel.channel.pipeline.syncOperations.handler(type: ReadCountingHandler.self).reads
            }.get()
            #expect(reads > 0, "the transport's handler sees the connection's reads")
            let echoed = try await socket.executeThenClose { inbound, outbound in
                try await outbound.send(text: "through the transport")
                return try await inbound.first { _ in true }.map { String(buffer: $0.data) }
            }
            #expect(echoed == "through the transport")
        }
    }

    /// Handlers of our own sit between the connection handler and the sequence, in place before the first frame.
    @Test func messageHandlersSeeEachMessageFirst() async throws {
        try await withEchoServer { port in
            let socket = try await WebSocketClient.connect(to: "127.0.0.1", port: port, messageHandlers: { pipeline in
                try pipeline.addHandler(MessageCounter())
            })
            let (echoed, counted) = try await socket.executeThenClose { inbound, outbound in
                try await outbound.send(text: "counted")
                let echoed = try await inbound.first { _ in true }.map { String(buffer: $0.data) }
                let counted = try await socket.asyncChannel.channel.eventLoop.submit {
                    try socket.asyncChannel.channel.pipeline.syncOperations.handler(type: MessageCounter.self).count
                }.get()
                return (echoed, counted)
            }
            #expect(echoed == "counted", "what the handler passes on reaches the sequence")
            #expect(counted == 1)
        }
    }

    /// Runs `body` with the port of a server that answers each connection's first bytes with `answer` (`nil`: never),
    /// then closes it (or keeps it open).
    static func withAnsweringServer(_ answer: String?, close: Bool = true, _ body: (Int) async throws -> Void) async throws {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    guard let answer else { return }
                    try channel.pipeline.syncOperations.addHandler(AnswerOnce(answer, close: close))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        do {
            try await body(server.localAddress!.port!)
            try? await server.close()
        } catch {
            try? await server.close()
            throw error
        }
    }

    @Test func zlibStateIsMadeOnlyWhenAMessageNeedsIt() throws {
        let compressor = WebSocketDeflateCompressor(configuration: .init(noContextTakeover: true))
        #expect(!compressor.isAllocated)
        _ = compressor.compress(ByteBuffer(string: "hello hello hello"))
        #expect(compressor.isAllocated)
        let decompressor = WebSocketDeflateDecompressor(configuration: .init(noContextTakeover: true))
        #expect(!decompressor.isAllocated)
        var output = ByteBuffer()
        try decompressor.decompress(compressor.compress(ByteBuffer(string: "hello hello hello")), into: &output, limit: 1000)
        #expect(decompressor.isAllocated)
        try decompressor.finishMessage(into: &output, limit: 1000)
        #expect(String(buffer: output) == "hello hello hello")
        #expect(!decompressor.isAllocated, "no context takeover: freed after the message")
        var again = ByteBuffer()
        try decompressor.decompress(compressor.compress(ByteBuffer(string: "again")), into: &again, limit: 1000)
        try decompressor.finishMessage(into: &again, limit: 1000)
        #expect(String(buffer: again) == "again")
    }
}

/// Writes a fixed answer to the first bytes received, then closes (or keeps the connection open).
private final class AnswerOnce: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let answer: String
    let close: Bool
    var answered = false
    init(_ answer: String, close: Bool = true) {
        self.answer = answer
        self.close = close
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !answered else { return }
        answered = true
        let channel = context.channel
        let close = self.close
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: answer))).whenComplete { _ in
            if close { channel.close(promise: nil) }
        }
    }
}

/// Counts the messages it passes on.
private final class MessageCounter: ChannelInboundHandler {
    typealias InboundIn = WebSocketMessage
    var count = 0

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        count += 1
        context.fireChannelRead(data)
    }
}
