import ArgumentParser
import FluxWebSocket
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix

/// `fluxgate echo-server`: the server-role conformance testee of our WebSocket layer (PROTOCOL.md
/// "Conformance testees"): echoes every text and binary message; accepts permessage-deflate when offered.
struct EchoServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "echo-server",
        abstract: "A WebSocket echo server on our RFC 6455 / RFC 7692 layer, for conformance tests and peers.",
        discussion: """
            Every text and binary message comes back as it was sent; permessage-deflate is accepted when offered.
            Example: fluxgate echo-server --port 9001 --max-message-size 16777216
            """
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
                    upgradePipelineHandler: { channel, _ in
                        channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHandler(EchoHandler())
                        }
                    }
                )
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                        withServerUpgrade: (
                            upgraders: [upgrader],
                            // Once upgraded, the plain-HTTP answerer leaves before any frame arrives.
                            completionHandler: { context in
                                context.pipeline.syncOperations.removeHandler(name: NotAWebSocketHandler.name, promise: nil)
                            }
                        ))
                    try channel.pipeline.syncOperations.addHandler(NotAWebSocketHandler(), name: NotAWebSocketHandler.name)
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
    typealias OutboundOut = WebSocketMessage

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.writeAndFlush(data, promise: nil)
    }
}

/// Answers plain HTTP requests and refused handshakes with an error, then closes.
private final class NotAWebSocketHandler: ChannelInboundHandler, RemovableChannelHandler {
    static let name = "not-a-websocket"
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let head) = unwrapInboundIn(data) else { return }
        respond(context: context, version: head.version, status: .badRequest, headers: [:],
                reason: "this is a WebSocket echo server: connect with a WebSocket handshake")
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let rejected = error as? WebSocketServerUpgrader.Rejected {
            respond(context: context, version: .http1_1, status: rejected.rejection.status, headers: rejected.rejection.headers, reason: rejected.rejection.reason)
        } else {
            context.close(promise: nil)
        }
    }

    private func respond(context: ChannelHandlerContext, version: HTTPVersion, status: HTTPResponseStatus, headers: HTTPHeaders, reason: String) {
        var headers = headers
        let body = ByteBuffer(string: #"{"error":"bad_request","message":"\#(reason.replacingOccurrences(of: "\"", with: "'"))"}"#)
        headers.replaceOrAdd(name: "Content-Type", value: "application/json")
        headers.replaceOrAdd(name: "Content-Length", value: String(body.readableBytes))
        headers.replaceOrAdd(name: "Connection", value: "close")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: version, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
    }
}
