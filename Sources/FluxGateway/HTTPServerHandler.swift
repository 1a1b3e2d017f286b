import FluxWebSocket
import Logging
import NIOCore
import NIOHTTP1

/// Sent through a connection's pipeline when the server stops: idle connections close at once, busy ones
/// after their response (a waiting long-poll is cut short with `503`; appends finish).
struct GatewayShutdownEvent: Sendable {}

/// A connection's HTTP/1.1 handlers besides ``HTTPServerHandler``, which leave the pipeline with it when a WebSocket
/// handshake is accepted.
struct HTTPConnectionHandlers {
    /// Forwards the bytes behind the handshake to the WebSocket handlers as it leaves.
    var requestDecoder: any RemovableChannelHandler
    /// The response encoder, the request gate, the pipelining handler.
    var others: [any RemovableChannelHandler]
}

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
        /// A request arrived whole while the connection's unsent answers are past the write high-water mark: it
        /// is answered once the client has read some of them (a client that never reads holds one request, not
        /// an ever-growing queue of answers).
        case waitingForWritability(HTTPRequestHead, ByteBuffer)
        /// The request was refused before its end (body too large); the connection closes after the answer.
        case discarding
        /// The router is working on a request; its task is `nil` while the task runs its first synchronous part
        /// (a request answered on the event loop starts at once and may finish before its task value exists).
        case responding(HTTPRequestHead, Task<Void, Never>?)
        /// A streamed body is being written; the connection closes after it.
        case streaming(Task<Void, Never>, BoundedOutboundWriter)
    }

    private let router: GatewayRouter
    private let maxBodySize: Int
    private let streamHighWater: Int
    private var logger: Logger
    private let connectionID: UInt64
    private let httpHandlers: HTTPConnectionHandlers
    private var requestCount = 0
    /// The task executor of this connection's event loop, made for its first request (`dispatch`).
    private var taskExecutor: EventLoopTaskExecutor?
    private var state = State.idle
    private var closeAfterResponse = false
    /// Malformed bytes followed the request being answered: once its answer is written, they get a `400`.
    private var pendingParserError: HTTPParserError?
    /// The connection's deadlines: a request slow to arrive (slowloris), idle between requests, lingering after the
    /// final answer.
    private var timeouts: HTTPConnectionTimeouts<EventLoopInstant>
    /// At `timeouts`' next deadline.
    private let timer = EventLoopDeadlineTimer()

    init(
        router: GatewayRouter, maxBodySize: Int, streamHighWater: Int, requestReadTimeout: Duration, idleTimeout: Duration,
        connectionID: UInt64, httpHandlers: HTTPConnectionHandlers, logger: Logger
    ) {
        self.httpHandlers = httpHandlers
        self.router = router
        self.maxBodySize = maxBodySize
        self.streamHighWater = streamHighWater
        self.timeouts = HTTPConnectionTimeouts(requestTimeout: requestReadTimeout, idleTimeout: idleTimeout)
        self.connectionID = connectionID
        self.logger = logger
        self.logger[metadataKey: "connection"] = "\(connectionID)"
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { run(timeouts.connectionActive(now: now(context)), context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        run(timeouts.connectionActive(now: now(context)), context: context)
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        run(timeouts.connectionClosed(), context: context)
        timer.cancel()  // no task (holding this handler) outlives the connection
    }

    // MARK: Time

    private func now(_ context: ChannelHandlerContext) -> EventLoopInstant {
        .now(on: context.eventLoop)
    }

    /// Carries out what `timeouts` asked for, then keeps the timer at its next deadline.
    private func run(_ action: HTTPConnectionTimeouts<EventLoopInstant>.Action, context: ChannelHandlerContext) {
        switch action {
        case .none:
            break
        case .answerRequestTimeout:
            answerRequestTimeout(context: context)
        case .closeOutput:
            let channel = context.channel
            channel.close(mode: .output).whenFailure { _ in channel.close(promise: nil) }
        case .closeConnection:
            context.close(promise: nil)
        }
        let deadline = timeouts.nextDeadline
        guard deadline != timer.deadline else { return }  // no closure (an allocation) when nothing moves
        timer.schedule(at: deadline, on: context.eventLoop) { [self] in
            run(timeouts.timerFired(now: now(context)), context: context)
        }
    }

    /// A request did not arrive within `requestReadTimeout` (its head, or the next piece of its body): `408`.
    private func answerRequestTimeout(context: ChannelHandlerContext) {
        var receivingHead: HTTPRequestHead?
        if case .receiving(let head, _) = state { receivingHead = head }
        state = .discarding
        closeAfterResponse = true
        let seconds = max(1, timeouts.requestTimeout.components.seconds)
        let response = GatewayResponse.error(
            .requestTimeout, "request_timeout", "the request did not arrive within \(seconds) s; send it whole, promptly"
        )
        countUnfinished(response.status, head: receivingHead)
        if receivingHead != nil {
            write(response, version: .http1_1, context: context)
        } else if let pipelining = try? context.pipeline.syncOperations.context(name: GatewayServer.HandlerName.pipelining) {
            // No request began, so the pipelining handler expects no response: write past it.
            write(response, version: .http1_1, context: context, through: pipelining)
        } else {
            context.close(promise: nil)
        }
    }

    // MARK: Requests

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            guard case .idle = state else { return }
            run(timeouts.received(.head, now: now(context)), context: context)
            if let length = head.headers.first(name: "Content-Length").flatMap(Int.init), length > maxBodySize {
                refuseBody(context: context, head: head)
                return
            }
            let codings = head.headers[canonicalForm: "Transfer-Encoding"].map { $0.lowercased() }
            if !codings.isEmpty, codings != ["chunked"] {
                // RFC 9112 §6.1: a transfer coding the server does not understand is answered with 501. Only
                // chunked is understood here; a body's length cannot be trusted otherwise, so the connection closes.
                refuse(
                    context: context, head: head, status: .notImplemented, code: "not_implemented",
                    message: "Transfer-Encoding \(codings.joined(separator: ", ").prefix(100)) is not supported; send the body with Content-Length or Transfer-Encoding: chunked"
                )
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
            run(timeouts.received(.body, now: now(context)), context: context)
        case .end:
            guard case .receiving(let head, let body) = state else { return }
            run(timeouts.received(.end, now: now(context)), context: context)
            if context.channel.isWritable {
                dispatch(context: context, head: head, body: body)
            } else {
                state = .waitingForWritability(head, body)
            }
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, case .waitingForWritability(let head, let body) = state {
            dispatch(context: context, head: head, body: body)
        }
        context.fireChannelWritabilityChanged()
    }

    private func refuseBody(context: ChannelHandlerContext, head: HTTPRequestHead) {
        refuse(
            context: context, head: head, status: .payloadTooLarge, code: "payload_too_large",
            message: "the request body is larger than the limit of \(maxBodySize) bytes; split the append into smaller ones"
        )
    }

    /// Answers a request that cannot be read to its end, and closes the connection after the answer.
    private func refuse(context: ChannelHandlerContext, head: HTTPRequestHead?, status: HTTPResponseStatus, code: String, message: String) {
        state = .discarding
        closeAfterResponse = true
        let response = GatewayResponse.error(status, code, message)
        countUnfinished(response.status, head: head)
        write(response, version: head?.version ?? .http1_1, context: context)
    }

    private func dispatch(context: ChannelHandlerContext, head: HTTPRequestHead, body: ByteBuffer) {
        // HEAD is answered as GET without the body (RFC 9110 §9.3.2); it never upgrades.
        var headers = head.headers
        if head.method == .HEAD { headers.remove(name: "Upgrade") }
        let method: HTTPMethod = head.method == .HEAD ? .GET : head.method
        var request = GatewayRequest(method: method, version: head.version, uri: head.uri, headers: headers, body: body)
        request.remoteAddress = context.channel.remoteAddress?.ipAddress
        requestCount += 1
        let dispatched = requestCount
        if let given = head.headers.first(name: "X-Request-ID"), (1...128).contains(given.utf8.count),
            given.utf8.allSatisfy({ (0x21...0x7E).contains($0) })
        {
            request.requestID = given
        } else {
            request.requestID = "\(connectionID)-\(requestCount)"
        }
        let requestID = request.requestID!
        let started = ContinuousClock.now
        let logger = self.logger
        let router = self.router
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let eventLoop = context.eventLoop
        let routed = request
        let respond: @Sendable () async -> Void = {
            var response = await router.respond(to: routed, countedAs: head.method)
            response.headers.replaceOrAdd(name: "X-Request-ID", value: requestID)
            if logger.logLevel <= .debug {
                let elapsed = started.duration(to: .now)
                let milliseconds = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
                logger.debug(
                    "request",
                    metadata: [
                        "request": "\(requestID)", "method": "\(routed.method)", "uri": "\(routed.redactedURI)",
                        "status": "\(response.status.code)", "ms": "\(Int(milliseconds.rounded()))",
                        "address": "\(routed.remoteAddress ?? "-")",
                    ]
                )
            }
            let answer = response
            if eventLoop.inEventLoop {
                let (handler, context) = bound.value
                handler.finish(answer, context: context)
            } else {
                eventLoop.execute {
                    let (handler, context) = bound.value
                    handler.finish(answer, context: context)
                }
            }
        }
        state = .responding(head, nil)
        let task: Task<Void, Never>
        if GatewayRouter.answersOnEventLoop(routed) {
            // Started at once, on this thread, and continued on this connection's event loop
            // (`EventLoopTaskExecutor`): a request that never waits for another thread (an in-memory lookup, a
            // SQLite point read) is answered inside this `channelRead`, before NIO decides whether to keep the
            // socket registered for reading — no task hop, no thread switch, and no two `epoll_ctl` calls per request.
            let executor = taskExecutor ?? EventLoopTaskExecutor(eventLoop)
            taskExecutor = executor
            task = Task.immediate(executorPreference: executor) { await respond() }
        } else {
            task = Task { await respond() }
        }
        // Unless it already finished (and the connection possibly moved on to its next request).
        if case .responding(let current, nil) = state, requestCount == dispatched {
            state = .responding(current, task)
        }
    }

    private func finish(_ response: GatewayResponse, context: ChannelHandlerContext) {
        guard case .responding(let head, _) = state else { return }
        state = .idle
        if !head.isKeepAlive { closeAfterResponse = true }
        if head.method == .HEAD, response.stream != nil {
            // A stream's GET has no length, so its HEAD ends by closing: its head and no body at all (the encoder
            // would end a chunked message with `0\r\n\r\n`, which a keep-alive client reads as the next answer).
            closeAfterResponse = true
            var headers = response.headers
            headers.remove(name: "Content-Length")
            headers.replaceOrAdd(name: "Connection", value: "close")
            writeFinal(.head(HTTPResponseHead(version: head.version, status: response.status, headers: headers)), context: context)
        } else if head.method == .HEAD {
            write(response, version: head.version, context: context, withBody: false)
        } else if let upgrade = response.upgrade {
            switchToPushChannel(upgrade, version: head.version, context: context)
        } else if let stream = response.stream {
            startStreaming(response, stream: stream, version: head.version, context: context)
        } else {
            write(response, version: head.version, context: context)
        }
        if let error = pendingParserError, case .idle = state, !closeAfterResponse {
            pendingParserError = nil
            errorCaught(context: context, error: error)
        }
    }

    /// Answers `101 Switching Protocols` and hands the connection to the push channel (RFC 6455 §4.2.2): the HTTP
    /// handlers leave the pipeline for the WebSocket connection handler and the push channel's own.
    private func switchToPushChannel(_ upgrade: PushChannelUpgrade, version: HTTPVersion, context: ChannelHandlerContext) {
        state = .discarding
        let head = HTTPResponseHead(version: version, status: .switchingProtocols, headers: upgrade.headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        do {
            try context.pipeline.syncOperations.switchToWebSocket(
                removing: httpHandlers.others + [self], requestDecoder: httpHandlers.requestDecoder,
                configuration: upgrade.connection, deflate: upgrade.deflate, maxFrameSize: upgrade.connection.maxMessageSize,
                installApplication: { try $0.addHandler(upgrade.makeHandler()) }
            )
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

    /// Counts an answer this handler gives before a request arrived whole (the router counts the others): by the
    /// head's route and method when a head came, else as route `other`, method `other`.
    private func countUnfinished(_ status: HTTPResponseStatus, head: HTTPRequestHead?) {
        let route = head.map { HTTPRoute(GatewayRequest(method: $0.method, version: $0.version, uri: $0.uri, headers: [:], body: ByteBuffer())) }
        router.metrics.recordRequest(route: route ?? .other, method: head?.method ?? .RAW(value: "-"), status: status, duration: nil)
    }

    /// Writes a whole response (through `through`, else this handler's context); `withBody: false` for HEAD (the
    /// headers still say the GET's Content-Length).
    private func write(
        _ response: GatewayResponse, version: HTTPVersion, context: ChannelHandlerContext, through: ChannelHandlerContext? = nil,
        withBody: Bool = true
    ) {
        let wrap = { (part: HTTPServerResponsePart) in NIOAny(part) }
        let writer = through ?? context
        var headers = response.headers
        if response.stream == nil {
            headers.replaceOrAdd(name: "Content-Length", value: String(response.body.readableBytes))
        }
        if closeAfterResponse {
            headers.replaceOrAdd(name: "Connection", value: "close")
        } else if version.major == 1 && version.minor == 0 {
            headers.replaceOrAdd(name: "Connection", value: "keep-alive")
        }
        writer.write(wrap(.head(HTTPResponseHead(version: version, status: response.status, headers: headers))), promise: nil)
        if withBody && response.body.readableBytes > 0 {
            writer.write(wrap(.body(.byteBuffer(response.body))), promise: nil)
        }
        if closeAfterResponse {
            writeFinal(.end(nil), context: context, through: writer)
        } else {
            // Before the write: writing the end hands over the next pipelined request, if one is waiting.
            if case .idle = state { run(timeouts.responseSent(now: now(context)), context: context) }
            writer.writeAndFlush(wrap(.end(nil)), promise: nil)
        }
    }

    /// Writes the last part of the final answer; once it is written, closes lingering (``HTTPConnectionTimeouts``).
    private func writeFinal(_ part: HTTPServerResponsePart, context: ChannelHandlerContext, through: ChannelHandlerContext? = nil) {
        run(timeouts.finalResponseSent(), context: context)
        (through ?? context).writeAndFlush(NIOAny(part)).assumeIsolated().whenComplete { [self] _ in
            run(timeouts.finalResponseWritten(now: now(context)), context: context)
        }
    }

    /// A read that waits for new events (`wait=S`, S > 0).
    static func isLongPoll(_ head: HTTPRequestHead) -> Bool {
        guard head.method == .GET || head.method == .HEAD else { return false }
        let request = GatewayRequest(method: head.method, uri: head.uri, headers: [:], body: ByteBuffer())
        return request.queryValues("wait").contains { $0 != "0" && !$0.isEmpty }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let error = error as? HTTPParserError {
            switch state {
            case .idle, .receiving:
                // Malformed HTTP (a head, or the body of the request being read, e.g. a bad chunk size): answer in
                // JSON, then close (the byte stream cannot be trusted any more).
                var head: HTTPRequestHead?
                if case .receiving(let receiving, _) = state { head = receiving }
                if error == .headerOverflow {
                    refuse(
                        context: context, head: head, status: .requestHeaderFieldsTooLarge, code: "headers_too_large",
                        message: "the request's headers are larger than this gateway accepts; send fewer or smaller ones"
                    )
                } else {
                    refuse(context: context, head: head, status: .badRequest, code: "bad_request", message: "the request is not valid HTTP/1.1: \(error)")
                }
                return
            case .responding, .waitingForWritability:
                // The bytes after a whole request are malformed: answer that request first, then this.
                pendingParserError = error
                return
            case .discarding, .streaming:
                break
            }
        }
        if timeouts.sentFinalResponse { return }  // bytes after our last answer (and the decoder's complaints about them)
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
        case .idle, .discarding, .waitingForWritability:
            context.close(promise: nil)
        case .receiving:
            break  // answer this request, then close
        case .responding(let head, let task):
            // End long-polls (they may wait a minute); let reads and appends finish: a consumer of the original feed
            // reading a page or an entry when the server stops gets its answer, not a 503 it would decode as an
            // empty event.
            if Self.isLongPoll(head) { task?.cancel() }
        case .streaming(let task, _):
            task.cancel()
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        run(timeouts.connectionClosed(), context: context)
        timer.cancel()
        switch state {
        case .responding(_, let task):
            task?.cancel()
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
