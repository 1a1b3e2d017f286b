import NIOCore
import NIOHTTP1

extension ChannelPipeline.SynchronousOperations {
    /// Sets up a server connection that speaks only WebSocket: an HTTP/1.1 decoder and encoder for the handshake and
    /// ``WebSocketServerUpgrader``'s answer to it (see there). Call it on the channel's event loop.
    public func configureWebSocketServerPipeline(upgrader: WebSocketServerUpgrader) throws {
        let encoder = HTTPResponseEncoder()
        let decoder = ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes))
        try addHandler(encoder)
        try addHandler(decoder)
        try addHandler(WebSocketHandshakeHandler(upgrader: upgrader, encoder: encoder, decoder: decoder))
    }

    /// Hands a server connection over from HTTP/1.1 to WebSocket once the `101` of a handshake
    /// ``WebSocketServerHandshake`` accepted is written (and flushed): the one way every server connection of this
    /// library switches, whoever runs its HTTP.
    ///
    /// The HTTP handlers leave the pipeline, the ``WebSocketConnectionHandler`` and the application's handlers take
    /// their place, and the request decoder leaves last, forwarding to them the bytes the client sent behind its
    /// handshake (create it with `leftOverBytesStrategy: .forwardBytes`). The application's handlers may write as
    /// soon as they are added: nothing of HTTP is left below them. Call it on the channel's event loop.
    ///
    /// - Parameters:
    ///   - httpHandlers: every HTTP handler but the request decoder (encoder, pipelining, the application's own).
    ///   - requestDecoder: the HTTP request decoder.
    ///   - configuration: the connection's limits and timers; its role must be ``WebSocketRole/server``.
    ///   - deflate: what the handshake agreed on (``WebSocketServerHandshake/Acceptance/deflate``).
    ///   - maxFrameSize: the largest frame payload accepted (RFC 6455 §10.4).
    ///   - installApplication: adds the handlers that read ``WebSocketMessage``s and write ``WebSocketOutboundMessage``s.
    public func switchToWebSocket(
        removing httpHandlers: [any RemovableChannelHandler],
        requestDecoder: any RemovableChannelHandler,
        configuration: WebSocketConnectionConfiguration,
        deflate: WebSocketDeflateParameters?,
        maxFrameSize: Int = 1 << 24,
        installApplication: (ChannelPipeline.SynchronousOperations) throws -> Void
    ) throws {
        precondition(configuration.role == .server, "switchToWebSocket needs a server-role configuration")
        for handler in httpHandlers { removeHandler(handler, promise: nil) }
        try WebSocketServerUpgrader.addHandlers(to: self, configuration: configuration, deflate: deflate, maxFrameSize: maxFrameSize)
        try installApplication(self)
        removeHandler(requestDecoder, promise: nil)
    }
}

/// Answers the one HTTP request of a WebSocket-only connection: `101` and the switch for an accepted handshake, a
/// JSON error and a close for anything else.
final class WebSocketHandshakeHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let upgrader: WebSocketServerUpgrader
    private let encoder: HTTPResponseEncoder
    private let decoder: ByteToMessageHandler<HTTPRequestDecoder>
    private var head: HTTPRequestHead?
    /// The request was answered: what follows is dropped.
    private var answered = false

    init(upgrader: WebSocketServerUpgrader, encoder: HTTPResponseEncoder, decoder: ByteToMessageHandler<HTTPRequestDecoder>) {
        self.upgrader = upgrader
        self.encoder = encoder
        self.decoder = decoder
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !answered else { return }
        switch Self.unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
        case .body:
            break  // a handshake has no body; a request with one is refused at its end
        case .end:
            guard let head else { return }
            answered = true
            answer(head, context: context)
        }
    }

    private func answer(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        guard head.headers.contains(name: "Upgrade") else {
            respond(context: context, version: head.version, status: .badRequest, headers: [:], reason: "this endpoint speaks WebSocket: connect with a WebSocket handshake")
            return
        }
        switch upgrader.handshake.evaluate(head) {
        case .reject(let rejection):
            respond(context: context, version: head.version, status: rejection.status, headers: rejection.headers, reason: rejection.reason)
        case .accept(let acceptance):
            context.write(Self.wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .switchingProtocols, headers: acceptance.headers))), promise: nil)
            context.writeAndFlush(Self.wrapOutboundOut(.end(nil)), promise: nil)
            let channel = context.channel
            let upgrader = self.upgrader
            do {
                try context.pipeline.syncOperations.switchToWebSocket(
                    removing: [encoder, self], requestDecoder: decoder, configuration: upgrader.configuration, deflate: acceptance.deflate,
                    maxFrameSize: upgrader.maxFrameSize, installApplication: { _ in try upgrader.upgradePipelineHandler(channel, head, acceptance) }
                )
            } catch {
                channel.close(promise: nil)
            }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Bytes that are not HTTP.
        guard !answered else { return context.close(promise: nil) }
        answered = true
        respond(context: context, version: .http1_1, status: .badRequest, headers: [:], reason: "the request is not valid HTTP/1.1")
    }

    private func respond(context: ChannelHandlerContext, version: HTTPVersion, status: HTTPResponseStatus, headers: HTTPHeaders, reason: String) {
        var headers = headers
        var body = ByteBuffer(string: #"{"error":"bad_handshake","message":""#)
        for scalar in reason.unicodeScalars where scalar != "\"" && scalar != "\\" && scalar.value >= 0x20 {
            body.writeString(String(scalar))
        }
        body.writeString(#""}"#)
        headers.replaceOrAdd(name: "Content-Type", value: "application/json")
        headers.replaceOrAdd(name: "Content-Length", value: String(body.readableBytes))
        headers.replaceOrAdd(name: "Connection", value: "close")
        context.write(Self.wrapOutboundOut(.head(HTTPResponseHead(version: version, status: status, headers: headers))), promise: nil)
        context.write(Self.wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        let channel = context.channel
        context.writeAndFlush(Self.wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
    }
}
