import FluxCore
import FluxWebSocket
import FluxWire
import Logging
import NIOCore
import NIOEmbedded
import Testing

@testable import FluxGateway

/// The push channel's application handler above the connection handler, on an embedded channel: what it closes
/// with, what it takes from a subscriber, what it counts. (The subscription itself runs in the integration tests,
/// `PushChannelTests`.)
@Suite struct PushChannelHandlerTests {
    static let key = WebSocketMaskingKey(1, 2, 3, 4)

    /// A server connection as the gateway installs it after a `101`, without a subscription.
    static func makeChannel(
        closeFirst: (WebSocketCloseCode, String)? = nil, expiresAt: ContinuousClock.Instant? = nil, metrics: GatewayMetrics
    ) throws -> EmbeddedChannel {
        let settings = PushChannelHandler.Settings(
            after: .start, deflate: nil, closeFirst: closeFirst, highWater: 64 * 1024, pingInterval: .seconds(30), pongTimeout: .seconds(30),
            expiresAt: expiresAt, slot: nil, compressor: SharedDeflateCompressor(), metrics: metrics, logger: Logger(label: "test")
        )
        let channel = EmbeddedChannel()
        channel.connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: 1), promise: nil)
        try channel.pipeline.syncOperations.addHandler(WebSocketConnectionHandler(configuration: settings.connection))
        try channel.pipeline.syncOperations.addHandler(PushChannelHandler(driver: nil, settings: settings))
        return channel
    }

    static func send(text: String, to channel: EmbeddedChannel) throws {
        var buffer = ByteBuffer()
        WebSocketFrameEncoder.encode(WebSocketFrame(opcode: .text, maskKey: key, data: ByteBuffer(string: text)), into: &buffer)
        try channel.writeInbound(buffer)
    }

    /// The code and reason of the Close frame the handler sent, if it sent one.
    static func sentClose(_ channel: EmbeddedChannel) throws -> (WebSocketCloseCode?, String)? {
        var wire = ByteBuffer()
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { wire.writeImmutableBuffer(buffer) }
        var parser = WebSocketFrameParser()
        while case .frame(let frame) = try parser.parseStep(&wire) {
            guard frame.opcode == .connectionClose else { continue }
            let close = try WebSocketClosePayload(parsing: frame.data)
            return (close.code, close.reason)
        }
        return nil
    }

    static func closes(_ metrics: GatewayMetrics, code: String) -> Bool {
        String(decoding: metrics.exposition(), as: UTF8.self).contains(#"fluxgate_websocket_closes_total{code="\#(code)"} 1"#)
    }

    @Test func aRefusedSubscriptionClosesAtOnceWithItsCodeAndReason() throws {
        let metrics = GatewayMetrics()
        let channel = try Self.makeChannel(closeFirst: (PushChannelHandler.badQuery, "after must be a position"), metrics: metrics)
        let close = try #require(try Self.sentClose(channel))
        #expect(close.0 == PushChannelHandler.badQuery)
        #expect(close.1 == "after must be a position")
        #expect(Self.closes(metrics, code: "4400"))
        _ = try? channel.finish()
    }

    @Test func acksAreTakenAndAnythingElseIsAPolicyViolation() throws {
        let metrics = GatewayMetrics()
        let channel = try Self.makeChannel(metrics: metrics)
        try Self.send(text: PushAcknowledgement(position: Position(7)).json, to: channel)
        let handler = try channel.pipeline.syncOperations.handler(type: PushChannelHandler.self)
        #expect(handler.acknowledged == Position(7))
        #expect(try Self.sentClose(channel) == nil)
        try Self.send(text: PushAcknowledgement(position: Position(-1)).json, to: channel)
        #expect(try Self.sentClose(channel)?.0 == .policyViolation)
        #expect(Self.closes(metrics, code: "1008"))
        _ = try? channel.finish()
    }

    @Test func aShutdownClosesWithGoingAway() throws {
        let metrics = GatewayMetrics()
        let channel = try Self.makeChannel(metrics: metrics)
        channel.pipeline.fireUserInboundEventTriggered(GatewayShutdownEvent())
        #expect(try Self.sentClose(channel)?.0 == .goingAway)
        #expect(Self.closes(metrics, code: "1001"))
        _ = try? channel.finish()
    }

    @Test func anExpiredTokenClosesWithPolicyViolation() throws {
        let metrics = GatewayMetrics()
        let channel = try Self.makeChannel(expiresAt: .now, metrics: metrics)
        channel.embeddedEventLoop.run()
        let close = try #require(try Self.sentClose(channel))
        #expect(close.0 == .policyViolation)
        #expect(close.1.contains("expired"))
        _ = try? channel.finish()
    }

    /// A connection that drops without a closing handshake is counted as 1006, once.
    @Test func aDroppedConnectionCountsAsAbnormal() throws {
        let metrics = GatewayMetrics()
        let channel = try Self.makeChannel(metrics: metrics)
        channel.pipeline.fireChannelInactive()
        #expect(Self.closes(metrics, code: "1006"))
        _ = try? channel.finish()
    }
}
