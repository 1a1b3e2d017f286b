import FluxTesting
import FluxWebSocket
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOPosix
import Testing

/// Sends one message once the connection is upgraded and reports the first message received.
final class OneShotClientHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketMessage
    typealias OutboundOut = WebSocketOutboundMessage

    private let message: WebSocketMessage
    private let received: EventLoopPromise<WebSocketMessage>

    init(message: WebSocketMessage, received: EventLoopPromise<WebSocketMessage>) {
        self.message = message
        self.received = received
    }

    func handlerAdded(context: ChannelHandlerContext) {
        context.writeAndFlush(Self.wrapOutboundOut(.message(message)), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        received.succeed(Self.unwrapInboundIn(data))
        context.close(promise: nil)  // starts our closing handshake
    }

    func channelInactive(context: ChannelHandlerContext) {
        received.fail(ChannelError.eof)
    }
}

/// Collects the messages the client receives.
final class CollectingClientHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketMessage
    var messages: [WebSocketMessage] = []

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        messages.append(Self.unwrapInboundIn(data))
    }
}

@Suite struct WebSocketClientUpgraderTests {
    /// A server may send its first frame in the same TCP segment as its 101 response (wsproto does, and
    /// Python `websockets` sometimes). The client used to lose it (NIOHTTP1 drops bytes left after the
    /// upgrade response by default), so `echo-client` never answered the server's first message.
    @Test(arguments: [false, true])
    func aFrameInTheSameReadAsThe101ResponseIsDelivered(deflate: Bool) throws {
        let channel = EmbeddedChannel()
        let upgrader = WebSocketClientUpgrader(
            handshake: WebSocketClientHandshake(deflate: deflate ? WebSocketDeflateOptions() : nil, key: "dGhlIHNhbXBsZSBub25jZQ=="),
            configuration: WebSocketConnectionConfiguration(role: .client, pingInterval: nil),
            upgradePipelineHandler: { channel, _ in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(CollectingClientHandler()) }
            }
        )
        try channel.pipeline.syncOperations.addWebSocketClientHandlers(upgrader: upgrader)
        try channel.writeOutbound(HTTPClientRequestPart.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: "/", headers: ["Host": "example.com"])))
        try channel.writeOutbound(HTTPClientRequestPart.end(nil))

        // The 101 and the first frame in one read; with deflate, "Hello" compressed (RFC 7692 §7.2.3.1) under
        // the parameters wsproto answers with.
        var bytes = ByteBuffer(string: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n")
        bytes.writeString("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n")
        if deflate {
            bytes.writeString("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=15\r\n")
        }
        bytes.writeString("\r\n")
        bytes.writeBytes(deflate ? [0xC1, 0x07, 0xF2, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00] : [0x81, 0x05] + Array("Hello".utf8))
        try channel.writeInbound(bytes)
        channel.embeddedEventLoop.run()

        let collector = try channel.pipeline.syncOperations.handler(type: CollectingClientHandler.self)
        #expect(collector.messages == [WebSocketMessage(opcode: .text, data: ByteBuffer(string: "Hello"))])
    }

    @Test(arguments: [false, true])
    func ourClientTalksToOurServerOverLoopback(deflate: Bool) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let server = try await WebSocketLoopbackTests.startEchoServer(
            group: group, handshake: WebSocketServerHandshake(deflate: WebSocketDeflateOptions(serverNoContextTakeover: true)))
        let port = try #require(server.localAddress?.port)
        let received = group.next().makePromise(of: WebSocketMessage.self)
        let sent = WebSocketMessage(opcode: .text, data: ByteBuffer(string: String(repeating: "hello from the client ", count: 50)))

        let upgrader = WebSocketClientUpgrader(
            handshake: WebSocketClientHandshake(deflate: deflate ? WebSocketDeflateOptions() : nil),
            configuration: WebSocketConnectionConfiguration(role: .client, pingInterval: nil, closeTimeout: .seconds(2)),
            upgradePipelineHandler: { channel, _ in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(OneShotClientHandler(message: sent, received: received))
                }
            }
        )
        let client = try await ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addWebSocketClientHandlers(upgrader: upgrader)
                }
            }
            .connect(host: "127.0.0.1", port: port)
            .get()
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/ws", headers: ["Host": "127.0.0.1:\(port)"])
        client.write(HTTPClientRequestPart.head(head), promise: nil)
        try await client.writeAndFlush(HTTPClientRequestPart.end(nil)).get()

        let echo = try await withTimeLimit(.seconds(20), "the echo") { try await received.futureResult.get() }
        #expect(echo == sent)
        // The closing handshake ends with the server closing TCP.
        try await withTimeLimit(.seconds(20), "the close") { try await client.closeFuture.get() }

        try await server.close()
        try await group.shutdownGracefully()
    }
}
