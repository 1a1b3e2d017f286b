import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOPosix
import NIOWebSocket

// The baseline of `fluxgate-bench websocket`: swift-nio's own NIOWebSocket, used by this benchmark target only
// (the product never links it). This file alone imports NIOWebSocket, so its `WebSocketFrame`,
// `WebSocketFrameDecoder`, … do not collide with ours.

/// NIOWebSocket's decoder and echo server, as the baseline of ``WebSocketBenchmark``.
enum NIOWebSocketBaseline {
    /// Decodes `chunks` (masked client frames cut like socket reads) with NIOWebSocket's `WebSocketFrameDecoder`
    /// in a `ByteToMessageHandler` on an `EmbeddedChannel`, unmasking every payload with `frame.unmaskedData` (no UTF-8 validation: NIOWebSocket has none). The chunks are consumed (left empty).
    static func decode(_ chunks: inout [ByteBuffer], maxFrameSize: Int) throws -> DecodeCount {
        let sink = FrameSink()
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: maxFrameSize)))
        try channel.pipeline.syncOperations.addHandler(sink)
        for index in chunks.indices {
            var chunk = ByteBuffer()
            swap(&chunk, &chunks[index])  // hand the only reference over, as a socket read would
            try channel.writeInbound(chunk)
        }
        _ = try channel.finish()
        return DecodeCount(frames: sink.frames, payloadBytes: sink.payloadBytes, checksum: sink.checksum)
    }

    /// Echoes `messages` copies of `frame` (one masked client frame) through the pipeline NIOWebSocketServerUpgrader
    /// and ``startEchoServer(group:host:port:maxFrameSize:)`` build, on an `EmbeddedChannel`: no sockets, so
    /// only the WebSocket layer's work per message. Each input is a fresh buffer, as a socket read is.
    /// Returns the bytes written back.
    static func echoInMemory(frame: ByteBuffer, messages: Int, maxFrameSize: Int) throws -> Int {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(WebSocketFrameEncoder())
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: maxFrameSize)))
        try channel.pipeline.syncOperations.addHandler(WebSocketProtocolErrorHandler())
        try channel.pipeline.syncOperations.addHandler(
            NIOWebSocketFrameAggregator(minNonFinalFragmentSize: 0, maxAccumulatedFrameCount: 1 << 20, maxAccumulatedFrameSize: maxFrameSize))
        try channel.pipeline.syncOperations.addHandler(EchoHandler())
        var written = 0
        for _ in 0..<messages {
            var input = channel.allocator.buffer(capacity: frame.readableBytes)
            input.writeImmutableBuffer(frame)
            try channel.writeInbound(input)
            while let output = try channel.readOutbound(as: ByteBuffer.self) {
                written &+= output.readableBytes
            }
        }
        // Not `finish()`: ours would start a closing handshake and wait for the peer's Close on a clock that
        // an EmbeddedChannel never advances.
        return written
    }

    /// Counts frames and unmasks their payload the way NIOWebSocket users do (`unmaskedData`).
    private final class FrameSink: ChannelInboundHandler {
        typealias InboundIn = WebSocketFrame
        var frames = 0
        var payloadBytes = 0
        var checksum = 0

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let frame = Self.unwrapInboundIn(data)
            let payload = frame.unmaskedData
            frames &+= 1
            payloadBytes &+= payload.readableBytes
            // Read a byte of the result so the unmasking cannot be optimised away.
            checksum &+= Int(payload.getInteger(at: payload.readerIndex, as: UInt8.self) ?? 0)
        }
    }

    /// Starts a WebSocket echo server on NIOWebSocket, set up like ours in ``WebSocketBenchmark``: TCP_NODELAY,
    /// `maxFrameSize`, NIOWebSocket's automatic protocol-error handling, `NIOWebSocketFrameAggregator` (so the
    /// echo handler sees whole messages, as ours does), no compression (NIOWebSocket has none).
    static func startEchoServer(group: EventLoopGroup, host: String, port: Int, maxFrameSize: Int) async throws -> Channel {
        try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.backlog, value: 1024)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                let upgrader = NIOWebSocketServerUpgrader(
                    maxFrameSize: maxFrameSize,
                    automaticErrorHandling: true,
                    shouldUpgrade: { channel, _ in channel.eventLoop.makeSucceededFuture(HTTPHeaders()) },
                    upgradePipelineHandler: { channel, _ in
                        channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHandler(
                                NIOWebSocketFrameAggregator(
                                    minNonFinalFragmentSize: 0, maxAccumulatedFrameCount: 1 << 20, maxAccumulatedFrameSize: maxFrameSize))
                            try channel.pipeline.syncOperations.addHandler(EchoHandler())
                        }
                    }
                )
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                        withServerUpgrade: (upgraders: [upgrader], completionHandler: { _ in }))
                }
            }
            .bind(host: host, port: port).get()
    }

    /// Echoes text and binary messages, answers pings, and answers a Close with a Close, then closes
    /// (what `fluxgate echo-server` does, written the way swift-nio's WebSocket example server is).
    private final class EchoHandler: ChannelInboundHandler {
        typealias InboundIn = WebSocketFrame
        typealias OutboundOut = WebSocketFrame
        private var closing = false

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let frame = Self.unwrapInboundIn(data)
            switch frame.opcode {
            case .text, .binary:
                guard !closing else { return }
                let reply = WebSocketFrame(fin: true, opcode: frame.opcode, data: frame.unmaskedData)
                context.writeAndFlush(Self.wrapOutboundOut(reply), promise: nil)
            case .ping:
                guard !closing else { return }
                context.writeAndFlush(Self.wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)), promise: nil)
            case .connectionClose:
                guard !closing else { return }
                closing = true
                var payload = frame.unmaskedData
                let code = payload.readSlice(length: min(2, payload.readableBytes)) ?? ByteBuffer()
                context.writeAndFlush(Self.wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: code)))
                    .assumeIsolated().whenComplete { _ in context.close(promise: nil) }
            default:
                break
            }
        }
    }
}
