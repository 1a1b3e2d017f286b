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
        // A server that answers 404 to everything.
        let refusing = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(AnswerOnce("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        defer { refusing.close(promise: nil) }
        await #expect(throws: WebSocketClientError.self) {
            _ = try await WebSocketClient.connect(to: "127.0.0.1", port: refusing.localAddress!.port!)
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

/// Writes a fixed answer to the first bytes received, then closes.
private final class AnswerOnce: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let answer: String
    init(_ answer: String) { self.answer = answer }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: answer))).whenComplete { _ in channel.close(promise: nil) }
    }
}
