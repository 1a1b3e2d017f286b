import FluxWebSocket
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

/// Echoes every message back (what the echo testee does).
final class EchoHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketMessage
    typealias OutboundOut = WebSocketOutboundMessage

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.writeAndFlush(Self.wrapOutboundOut(.message(Self.unwrapInboundIn(data))), promise: nil)
    }
}

@Suite struct WebSocketServerUpgraderTests {
    static func makeChannel(handshake: WebSocketServerHandshake = WebSocketServerHandshake()) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        let upgrader = WebSocketServerUpgrader(
            handshake: handshake,
            configuration: WebSocketConnectionConfiguration(role: .server, pingInterval: nil),
            upgradePipelineHandler: { channel, _, _ in try channel.pipeline.syncOperations.addHandler(EchoHandler()) }
        )
        try channel.pipeline.syncOperations.configureWebSocketServerPipeline(upgrader: upgrader)
        channel.connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: 1), promise: nil)
        return channel
    }

    static func request(extraHeaders: String = "") -> ByteBuffer {
        ByteBuffer(string: "GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\(extraHeaders)\r\n")
    }

    static func readAll(_ channel: EmbeddedChannel) throws -> ByteBuffer {
        channel.embeddedEventLoop.run()
        var all = ByteBuffer()
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { all.writeImmutableBuffer(buffer) }
        return all
    }

    @Test func upgradesAndEchoes() throws {
        let channel = try Self.makeChannel()
        try channel.writeInbound(Self.request())
        let response = String(buffer: try Self.readAll(channel))
        #expect(response.hasPrefix("HTTP/1.1 101 Switching Protocols\r\n"))
        #expect(response.lowercased().contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="))

        var frame = ByteBuffer()
        WebSocketFrameEncoder.encode(WebSocketFrame(opcode: .text, maskKey: WebSocketMaskingKey(1, 2, 3, 4), data: ByteBuffer(string: "echo me")), into: &frame)
        try channel.writeInbound(frame)
        #expect(try Self.readAll(channel).bytes == [0x81, 0x07] + Array("echo me".utf8))
        try WebSocketConnectionHandlerTests.finish(channel)
    }

    @Test func frameInTheSamePacketAsTheRequestIsNotLost() throws {
        let channel = try Self.makeChannel()
        var bytes = Self.request()
        WebSocketFrameEncoder.encode(WebSocketFrame(opcode: .binary, maskKey: WebSocketMaskingKey(9, 9, 9, 9), data: ByteBuffer(bytes: [7])), into: &bytes)
        try channel.writeInbound(bytes)
        let output = try Self.readAll(channel)
        #expect(output.bytes.suffix(3) == [0x82, 0x01, 0x07])
        try WebSocketConnectionHandlerTests.finish(channel)
    }

    @Test func negotiatesDeflate() throws {
        let channel = try Self.makeChannel(handshake: WebSocketServerHandshake(deflate: WebSocketDeflateOptions(serverNoContextTakeover: true)))
        try channel.writeInbound(Self.request(extraHeaders: "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"))
        let response = String(buffer: try Self.readAll(channel)).lowercased()
        #expect(response.contains("sec-websocket-extensions: permessage-deflate; server_no_context_takeover"))

        var frame = ByteBuffer()
        WebSocketFrameEncoder.encode(
            WebSocketFrame(rsv1: true, opcode: .text, maskKey: WebSocketMaskingKey(1, 2, 3, 4), data: ByteBuffer(bytes: [0xF2, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00])),
            into: &frame)
        try channel.writeInbound(frame)
        #expect(try Self.readAll(channel).bytes == [0xC1, 0x07, 0xF2, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00])
        try WebSocketConnectionHandlerTests.finish(channel)
    }

    /// A refused handshake is answered with its status, the version it wants and a JSON reason; then the connection
    /// closes.
    @Test func refusedHandshakeIsAnsweredWithItsStatus() throws {
        let channel = try Self.makeChannel()
        try channel.writeInbound(ByteBuffer(string: "GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n"))
        let response = String(buffer: try Self.readAll(channel))
        #expect(response.hasPrefix("HTTP/1.1 426 Upgrade Required\r\n"))
        #expect(response.lowercased().contains("sec-websocket-version: 13"))
        #expect(response.contains(#"{"error":"bad_handshake","message":"#))
        #expect(!channel.isActive)
    }

    /// A plain HTTP request and bytes that are not HTTP get `400`, and the connection closes.
    @Test func anythingButAHandshakeIsAnsweredWith400() throws {
        for request in ["GET / HTTP/1.1\r\nHost: example.com\r\n\r\n", "\u{01}\u{02} not http\r\n\r\n"] {
            let channel = try Self.makeChannel()
            _ = try? channel.writeInbound(ByteBuffer(string: request))
            let response = String(buffer: try Self.readAll(channel))
            #expect(response.hasPrefix("HTTP/1.1 400 Bad Request\r\n"), "\(request.debugDescription)")
            #expect(!channel.isActive)
        }
    }
}
