import FluxWebSocket
import NIOCore
import NIOHTTP1
import NIOPosix
import Testing

/// Sends one message once the connection is upgraded and reports the first message received.
final class OneShotClientHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketMessage
    typealias OutboundOut = WebSocketMessage

    private let message: WebSocketMessage
    private let received: EventLoopPromise<WebSocketMessage>

    init(message: WebSocketMessage, received: EventLoopPromise<WebSocketMessage>) {
        self.message = message
        self.received = received
    }

    func handlerAdded(context: ChannelHandlerContext) {
        context.writeAndFlush(Self.wrapOutboundOut(message), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        received.succeed(Self.unwrapInboundIn(data))
        context.close(promise: nil)  // starts our closing handshake
    }

    func channelInactive(context: ChannelHandlerContext) {
        received.fail(ChannelError.eof)
    }
}

@Suite struct WebSocketClientUpgraderTests {
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
                    try channel.pipeline.syncOperations.addHTTPClientHandlers(
                        withClientUpgrade: (upgraders: [upgrader], completionHandler: { _ in }))
                }
            }
            .connect(host: "127.0.0.1", port: port)
            .get()
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/ws", headers: ["Host": "127.0.0.1:\(port)"])
        client.write(HTTPClientRequestPart.head(head), promise: nil)
        try await client.writeAndFlush(HTTPClientRequestPart.end(nil)).get()

        let echo = try await WebSocketLoopbackTests.withTimeout(.seconds(20)) { try await received.futureResult.get() }
        #expect(echo == sent)
        // The closing handshake ends with the server closing TCP.
        try await WebSocketLoopbackTests.withTimeout(.seconds(20)) { try await client.closeFuture.get() }

        try await server.close()
        try await group.shutdownGracefully()
    }
}
