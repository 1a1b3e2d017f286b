import ArgumentParser
import FluxWebSocket
import Logging
import NIOCore
import NIOPosix

/// `fluxgate echo-server`: the server-role conformance testee of our WebSocket layer (README "Wire protocol" →
/// "Conformance testees"): echoes every text and binary message; accepts permessage-deflate when offered.
struct EchoServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "echo-server",
        abstract: "A WebSocket echo server on our RFC 6455 / RFC 7692 layer, for conformance tests and peers.",
        discussion: """
            Every text and binary message comes back as it was sent; permessage-deflate is accepted when offered.
            Example: fluxgate echo-server --port 9001 --max-message-size 16777216
            """,
        // A conformance testee (RFC 6455 test suites and peers), not a user command: left out of `fluxgate --help`.
        shouldDisplay: false
    )

    @Option(help: "The address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "The port to listen on (0 picks a free one).")
    var port = 9001

    @Option(help: "The largest message accepted, in bytes (larger ones close with 1009).")
    var maxMessageSize = 16 << 20

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0…65535") }
        guard maxMessageSize > 0 else { throw ValidationError("--max-message-size must be positive") }
    }

    func run() async throws {
        let logger = Logger(label: "fluxgate.echo")
        let maxMessageSize = self.maxMessageSize
        let handshake = WebSocketServerHandshake(deflate: WebSocketDeflateOptions())
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                let upgrader = WebSocketServerUpgrader(
                    handshake: handshake,
                    configuration: WebSocketConnectionConfiguration(role: .server, maxMessageSize: maxMessageSize, pingInterval: nil),
                    maxFrameSize: maxMessageSize,
                    upgradePipelineHandler: { channel, _, _ in try channel.pipeline.syncOperations.addHandler(EchoHandler()) }
                )
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureWebSocketServerPipeline(upgrader: upgrader)
                }
            }
            .bind(host: host, port: port).get()
        logger.info("fluxgate echo server listening", metadata: ["address": "ws://\(host):\(channel.localAddress?.port ?? port)"])
        try await channel.closeFuture.get()
    }
}

/// Sends every message back.
final class EchoHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketMessage
    typealias OutboundOut = WebSocketOutboundMessage

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.writeAndFlush(Self.wrapOutboundOut(.message(Self.unwrapInboundIn(data))), promise: nil)
    }
}
