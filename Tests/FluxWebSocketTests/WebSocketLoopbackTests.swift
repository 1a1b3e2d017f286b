import FluxTesting
import FluxWebSocket
import NIOCore
import NIOHTTP1
import NIOPosix
import Testing

/// End to end over a real loopback socket: the WebSocket server pipeline (``WebSocketServerUpgrader``) + an echo
/// handler, driven by a raw TCP client that speaks the handshake and frames with our codec.
@Suite struct WebSocketLoopbackTests {
    static func startEchoServer(group: MultiThreadedEventLoopGroup, handshake: WebSocketServerHandshake) async throws -> Channel {
        try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                let upgrader = WebSocketServerUpgrader(
                    handshake: handshake,
                    configuration: WebSocketConnectionConfiguration(role: .server, pingInterval: nil),
                    upgradePipelineHandler: { channel, _, _ in try channel.pipeline.syncOperations.addHandler(EchoHandler()) }
                )
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureWebSocketServerPipeline(upgrader: upgrader)
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
    }

    /// Serializes a request head the way a browser would send it.
    static func serialize(_ head: HTTPRequestHead) -> ByteBuffer {
        var text = "\(head.method.rawValue) \(head.uri) HTTP/1.1\r\n"
        for (name, value) in head.headers { text += "\(name): \(value)\r\n" }
        return ByteBuffer(string: text + "\r\n")
    }

    @Test(arguments: [false, true])
    func handshakeEchoAndCloseOverLoopback(deflate: Bool) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let server = try await Self.startEchoServer(
            group: group, handshake: WebSocketServerHandshake(deflate: WebSocketDeflateOptions(serverNoContextTakeover: true)))
        let port = try #require(server.localAddress?.port)

        let client = try await ClientBootstrap(group: group).connect(host: "127.0.0.1", port: port) { channel in
            channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
        }
        let handshake = WebSocketClientHandshake(deflate: deflate ? WebSocketDeflateOptions() : nil)
        let payload = String(repeating: "fluxgate event ", count: 200)

        let (response, frames) = try await withTimeLimit(.seconds(20), "the echo exchange") { try await client.executeThenClose { inbound, outbound in
            try await outbound.write(Self.serialize(handshake.requestHead(host: "127.0.0.1:\(port)", path: "/ws")))
            var message = WebSocketFrame(opcode: .text, maskKey: .random(), data: ByteBuffer(string: payload))
            if deflate {
                let compressor = WebSocketDeflateCompressor(configuration: .init())
                message = WebSocketFrame(rsv1: true, opcode: .text, maskKey: .random(), data: compressor.compress(ByteBuffer(string: payload)))
            }
            var frames = ByteBuffer()
            WebSocketFrameEncoder.encode(message, into: &frames)
            WebSocketFrameEncoder.encode(WebSocketFrame(opcode: .connectionClose, maskKey: .random(), data: ByteBuffer(bytes: [0x03, 0xE8])), into: &frames)
            try await outbound.write(frames)

            // Read until the server closes TCP (it closes after echoing our Close, RFC 6455 §7.1.1).
            var received = ByteBuffer()
            for try await chunk in inbound { received.writeImmutableBuffer(chunk) }
            let bytes = received.bytes
            let headLength = try #require((0..<max(0, bytes.count - 3)).first { bytes[$0..<($0 + 4)] == [0x0D, 0x0A, 0x0D, 0x0A] }) + 4
            let head = received.readString(length: headLength)
            let response = try #require(head)
            var parser = WebSocketFrameParser(configuration: .init(allowedReservedBits: .rsv1))
            var parsed: [WebSocketFrame] = []
            while case .frame(let frame) = try parser.parseStep(&received) { parsed.append(frame) }
            return (response, parsed)
        } }

        #expect(response.hasPrefix("HTTP/1.1 101 Switching Protocols"))
        #expect(response.lowercased().contains("sec-websocket-accept: \(WebSocketHandshake.acceptValue(forKey: handshake.key).lowercased())"))
        #expect(response.contains("permessage-deflate") == deflate)
        #expect(frames.count == 2)
        let echo = try #require(frames.first)
        #expect(echo.opcode == WebSocketOpcode.text && echo.maskKey == nil && echo.rsv1 == deflate)
        if deflate {
            var output = ByteBuffer()
            let decompressor = WebSocketDeflateDecompressor(configuration: .init(noContextTakeover: true))
            try decompressor.decompress(echo.data, into: &output, limit: 1 << 20)
            try decompressor.finishMessage(into: &output, limit: 1 << 20)
            #expect(String(buffer: output) == payload)
        } else {
            #expect(String(buffer: echo.data) == payload)
        }
        #expect(frames.last?.opcode == .connectionClose)
        #expect(frames.last?.data.bytes == [0x03, 0xE8])

        try await server.close()
        try await group.shutdownGracefully()
    }
}
