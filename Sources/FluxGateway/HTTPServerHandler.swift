import Logging
import NIOCore
import NIOHTTP1

/// Sent through a connection's pipeline when the server stops: idle connections close at once, busy ones
/// after their response (a waiting long-poll is cut short with `503`; appends finish).
struct GatewayShutdownEvent: Sendable {}

/// Collects one request at a time (the pipelining handler before it holds the next one back), hands it to
/// the router off the event loop, and writes the response back. Keep-alive, body limit, JSON errors.
final class HTTPServerHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private enum State {
        /// Waiting for a request head.
        case idle
        /// Reading a request's body.
        case receiving(HTTPRequestHead, ByteBuffer)
        /// The request was refused before its end (body too large); the connection closes after the answer.
        case discarding
        /// The router is working on a request.
        case responding(HTTPRequestHead, Task<Void, Never>)
        /// A streamed body is being written; the connection closes after it.
        case streaming(Task<Void, Never>, BoundedOutboundWriter)
    }

    private let router: GatewayRouter
    private let maxBodySize: Int
    private let streamHighWater: Int
    private let logger: Logger
    private var state = State.idle
    private var closeAfterResponse = false

    init(router: GatewayRouter, maxBodySize: Int, streamHighWater: Int, logger: Logger) {
        self.router = router
        self.maxBodySize = maxBodySize
        self.streamHighWater = streamHighWater
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            guard case .idle = state else { return }
            if let length = head.headers.first(name: "Content-Length").flatMap(Int.init), length > maxBodySize {
                refuseBody(context: context, head: head)
                return
            }
            state = .receiving(head, context.channel.allocator.buffer(capacity: 0))
            if head.headers[canonicalForm: "Expect"].contains(where: { $0.lowercased() == "100-continue" }) {
                // curl and others wait for this before sending a large body (RFC 9110 §10.1.1).
                context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))), promise: nil)
            }
        case .body(var chunk):
            guard case .receiving(let head, var body) = state else { return }
            if body.readableBytes + chunk.readableBytes > maxBodySize {
                refuseBody(context: context, head: head)
                return
            }
            state = .idle  // drop the reference so the write below does not copy
            body.writeBuffer(&chunk)
            state = .receiving(head, body)
        case .end:
            guard case .receiving(let head, let body) = state else { return }
            dispatch(context: context, head: head, body: body)
        }
    }

    private func refuseBody(context: ChannelHandlerContext, head: HTTPRequestHead) {
        state = .discarding
        closeAfterResponse = true
        let response = GatewayResponse.error(
            .payloadTooLarge, "payload_too_large",
            "the request body is larger than the limit of \(maxBodySize) bytes; split the append into smaller ones"
        )
        write(response, version: head.version, context: context)
    }

    private func dispatch(context: ChannelHandlerContext, head: HTTPRequestHead, body: ByteBuffer) {
        // HEAD is answered as GET without the body (RFC 9110 §9.3.2); it never upgrades.
        var headers = head.headers
        if head.method == .HEAD { headers.remove(name: "Upgrade") }
        let method: HTTPMethod = head.method == .HEAD ? .GET : head.method
        let request = GatewayRequest(method: method, version: head.version, uri: head.uri, headers: headers, body: body)
        let router = self.router
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let eventLoop = context.eventLoop
        let task = Task {
            let response = await router.respond(to: request)
            eventLoop.execute {
                let (handler, context) = bound.value
                handler.finish(response, context: context)
            }
        }
        state = .responding(head, task)
    }

    private func finish(_ response: GatewayResponse, context: ChannelHandlerContext) {
        guard case .responding(let head, _) = state else { return }
        state = .idle
        if !head.isKeepAlive { closeAfterResponse = true }
        if head.method == .HEAD {
            var response = response
            if response.stream != nil { response.headers.remove(name: "Content-Length") }
            write(response, version: head.version, context: context, withBody: false)
        } else if let upgrade = response.upgrade {
            switchToPushChannel(upgrade, version: head.version, context: context)
        } else if let stream = response.stream {
            startStreaming(response, stream: stream, version: head.version, context: context)
        } else {
            write(response, version: head.version, context: context)
        }
    }

    /// Answers `101 Switching Protocols` and hands the connection to the push channel (RFC 6455 §4.2.2):
    /// the HTTP handlers leave the pipeline; bytes the client sent after its handshake are forwarded to the
    /// push channel by the request decoder as it is removed.
    private func switchToPushChannel(_ upgrade: PushChannelUpgrade, version: HTTPVersion, context: ChannelHandlerContext) {
        state = .discarding
        let head = HTTPResponseHead(version: version, status: .switchingProtocols, headers: upgrade.headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        do {
            let pipeline = context.pipeline.syncOperations
            try pipeline.addHandler(upgrade.makeHandler())
            _ = context.pipeline.removeHandler(name: GatewayServer.HandlerName.pipelining)
            _ = context.pipeline.removeHandler(name: GatewayServer.HandlerName.encoder)
            pipeline.removeHandler(context: context, promise: nil)
            _ = context.pipeline.removeHandler(name: GatewayServer.HandlerName.decoder)
            // Once the HTTP handlers are gone, the push channel may write frames.
            let channel = context.channel
            context.eventLoop.execute { channel.pipeline.fireUserInboundEventTriggered(PushChannelHandler.Start()) }
        } catch {
            logger.error("could not switch to the push channel", metadata: ["error": "\(error)"])
            context.close(promise: nil)
        }
    }

    private func startStreaming(
        _ response: GatewayResponse, stream: @escaping @Sendable (BoundedOutboundWriter) async throws -> Void,
        version: HTTPVersion, context: ChannelHandlerContext
    ) {
        var headers = response.headers
        headers.remove(name: "Content-Length")
        headers.replaceOrAdd(name: "Connection", value: "close")
        context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: version, status: response.status, headers: headers))), promise: nil)
        let writer = BoundedOutboundWriter(
            channel: context.channel, framing: .httpBody, highWater: streamHighWater, lowWater: streamHighWater / 4, metrics: router.metrics
        )
        let channel = context.channel
        let logger = self.logger
        let task = Task {
            do {
                try await stream(writer)
            } catch is CancellationError {
            } catch {
                logger.debug("stream ended", metadata: ["error": "\(error)"])
            }
            channel.writeAndFlush(HTTPServerResponsePart.end(nil)).whenComplete { _ in channel.close(promise: nil) }
        }
        state = .streaming(task, writer)
    }

    /// Writes a whole response; `withBody: false` for HEAD (the headers still say the GET's Content-Length).
    private func write(_ response: GatewayResponse, version: HTTPVersion, context: ChannelHandlerContext, withBody: Bool = true) {
        var headers = response.headers
        if response.stream == nil {
            headers.replaceOrAdd(name: "Content-Length", value: String(response.body.readableBytes))
        }
        if closeAfterResponse {
            headers.replaceOrAdd(name: "Connection", value: "close")
        } else if version.major == 1 && version.minor == 0 {
            headers.replaceOrAdd(name: "Connection", value: "keep-alive")
        }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: version, status: response.status, headers: headers))), promise: nil)
        if withBody && response.body.readableBytes > 0 {
            context.write(wrapOutboundOut(.body(.byteBuffer(response.body))), promise: nil)
        }
        if closeAfterResponse {
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
        } else {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is HTTPParserError, case .idle = state {
            // Malformed HTTP: answer in JSON, then close (the byte stream cannot be trusted any more).
            state = .discarding
            closeAfterResponse = true
            write(
                .error(.badRequest, "bad_request", "the request is not valid HTTP/1.1: \(error)"),
                version: .http1_1, context: context
            )
            return
        }
        logger.debug("connection error", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is GatewayShutdownEvent else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        closeAfterResponse = true
        switch state {
        case .idle, .discarding:
            context.close(promise: nil)
        case .receiving:
            break  // answer this request, then close
        case .responding(let head, let task):
            if head.method == .GET { task.cancel() }  // end long-polls; let appends finish
        case .streaming(let task, _):
            task.cancel()
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        switch state {
        case .responding(_, let task):
            task.cancel()
        case .streaming(let task, let writer):
            task.cancel()
            writer.fail(ChannelError.ioOnClosedChannel)
        default:
            break
        }
        state = .discarding
        context.fireChannelInactive()
    }
}
