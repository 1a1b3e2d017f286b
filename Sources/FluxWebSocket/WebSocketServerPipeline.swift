import NIOCore
import NIOHTTP1

extension ChannelPipeline.SynchronousOperations {
    /// Sets up a server connection that speaks only WebSocket: NIO's HTTP/1 server pipeline with `upgrader`, and an
    /// answerer for everything else — a plain HTTP request gets `400`, a refused handshake its status (`400`, `426`
    /// with `Sec-WebSocket-Version: 13`), each with a JSON error body, then the connection closes. The answerer
    /// leaves the pipeline once a handshake is accepted, before any frame arrives.
    public func configureWebSocketServerPipeline(upgrader: WebSocketServerUpgrader) throws {
        try configureHTTPServerPipeline(
            withServerUpgrade: (
                upgraders: [upgrader],
                completionHandler: { context in
                    context.pipeline.syncOperations.removeHandler(name: NotAWebSocketHandler.name, promise: nil)
                }
            ))
        try addHandler(NotAWebSocketHandler(), name: NotAWebSocketHandler.name)
    }
}

/// Answers plain HTTP requests and refused handshakes with a JSON error, then closes.
final class NotAWebSocketHandler: ChannelInboundHandler, RemovableChannelHandler {
    static let name = "fluxgate-not-a-websocket"
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let head) = unwrapInboundIn(data) else { return }
        respond(context: context, version: head.version, status: .badRequest, headers: [:], reason: "this endpoint speaks WebSocket: connect with a WebSocket handshake")
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
        var body = ByteBuffer(string: #"{"error":"bad_handshake","message":""#)
        for scalar in reason.unicodeScalars where scalar != "\"" && scalar != "\\" && scalar.value >= 0x20 {
            body.writeString(String(scalar))
        }
        body.writeString(#""}"#)
        headers.replaceOrAdd(name: "Content-Type", value: "application/json")
        headers.replaceOrAdd(name: "Content-Length", value: String(body.readableBytes))
        headers.replaceOrAdd(name: "Connection", value: "close")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: version, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
    }
}
