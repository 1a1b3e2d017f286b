import FluxCore
import FluxWebSocket
import NIOCore
import NIOHTTP1
import NIOPosix

/// A message of the push channel (PROTOCOL.md "Push channel"), decoded.
public enum PushMessage: Sendable {
    /// Events in position order.
    case events(epoch: StoreEpoch, [RecordedEvent])
    /// The backlog is delivered; live events follow.
    case caughtUp(head: Position)
}

/// Why the push channel could not be used.
public struct PushChannelError: Error, Sendable, CustomStringConvertible {
    /// The server (or a proxy) answered the upgrade with this HTTP status instead of `101`.
    public var refusedStatus: Int?
    /// The close code the server ended the connection with.
    public var closeCode: UInt16?
    public var message: String
    public var description: String { message }
}

/// A subscription over the gateway's WebSocket push channel, in the client role of our RFC 6455 layer:
/// masked frames out, the server's pings answered, permessage-deflate inflated.
///
/// Use from one task at a time.
public final class PushChannelConnection {
    private let channel: any Channel
    private var iterator: AsyncThrowingStream<WebSocketMessage, any Error>.AsyncIterator
    private let handler: NIOLoopBound<PushChannelClientHandler>
    /// The close code and reason the server sent, once the connection ended.
    public var close: (code: UInt16?, reason: String)? {
        get async { try? await channel.eventLoop.submit { [handler] in handler.value.closeReceived }.get() ?? nil }
    }

    private init(channel: any Channel, handler: NIOLoopBound<PushChannelClientHandler>, stream: AsyncThrowingStream<WebSocketMessage, any Error>) {
        self.channel = channel
        self.handler = handler
        self.iterator = stream.makeAsyncIterator()
    }

    /// Connects and completes the opening handshake for `GET <target>` (path and query).
    ///
    /// Throws `PushChannelError` with `refusedStatus` when the answer is not `101` (a proxy without
    /// WebSocket support, a gateway without the push channel): the caller can fall back to polling; without one
    /// when no answer came within `handshakeTimeoutSeconds`. With `tls`
    /// it speaks `wss://`, and throws `ClientTLSError` when the TLS handshake fails.
    public static func connect(
        host: String, port: Int, target: String, deflate: Bool = true, tls: ClientTLS? = nil, headers: [(String, String)] = [],
        handshakeTimeoutSeconds: Int = 10, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> PushChannelConnection {
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: WebSocketMessage.self)
        let (opened, openedContinuation) = AsyncThrowingStream.makeStream(of: Void.self)
        let handshake = WebSocketClientHandshake(deflate: deflate ? WebSocketDeflateOptions(serverNoContextTakeover: false) : nil)
        let tlsHandshake = PendingTLSHandshake()
        let channel = try await ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            // Reads on demand: the handler stops reading while messages wait unconsumed (bounded client memory;
            // the gateway then serves this subscriber at its own pace).
            .channelOption(.autoRead, value: false)
            .connectTimeout(.seconds(10))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try tlsHandshake.start(tls, on: channel.pipeline.syncOperations, host: host, port: port)
                    try channel.pipeline.syncOperations.addHandler(
                        PushChannelClientHandler(handshake: handshake, messages: continuation, opened: openedContinuation)
                    )
                }
            }
            .connect(host: host, port: port).get()
        try await tlsHandshake.completed(on: channel)
        let handler = try await channel.eventLoop.submit {
            NIOLoopBound(try channel.pipeline.syncOperations.handler(type: PushChannelClientHandler.self), eventLoop: channel.eventLoop)
        }.get()
        var request = ByteBuffer()
        let head = handshake.requestHead(host: "\(host):\(port)", path: target)
        request.writeString("GET \(head.uri) HTTP/1.1\r\n")
        for (name, value) in head.headers { request.writeString("\(name): \(value)\r\n") }
        for (name, value) in headers { request.writeString("\(name): \(value)\r\n") }
        request.writeString("\r\n")
        // A server (or proxy) that takes the connection and never answers must not hold the subscriber forever.
        let handshakeTimeout = channel.eventLoop.scheduleTask(in: .seconds(Int64(handshakeTimeoutSeconds))) {
            handler.value.handshakeTimedOut()
        }
        defer { handshakeTimeout.cancel() }
        try await channel.writeAndFlush(request)
        var openedIterator = opened.makeAsyncIterator()
        do {
            guard try await openedIterator.next() != nil else {
                throw PushChannelError(message: "the WebSocket handshake was cancelled")
            }
        } catch {
            try? await channel.close()
            throw error
        }
        return PushChannelConnection(channel: channel, handler: handler, stream: stream)
    }

    /// The next text message undecoded (the JSON bytes); `nil` once the connection closed. For tools that
    /// only count or sample (load generators), where decoding every envelope would measure the client.
    public func nextText() async throws -> ByteBuffer? {
        while true {
            let message = try await nextMessage()
            guard let message else { return nil }
            if message.isText { return message.data }
        }
    }

    /// The next message; `nil` once the connection closed (see `close`).
    public func next() async throws -> PushMessage? {
        while true {
            let message = try await nextMessage()
            guard let message else { return nil }
            let bytes = Array(message.data.readableBytesView)
            // Text messages are valid UTF-8 (checked by the WebSocket layer); payloads are only sliced, and the
            // envelope fields a RecordedEvent has no place for (`url`, `created`) only checked, never built.
            guard message.isText, let json = try? JSONParser.parse(bytes, opaqueKeys: ["payload", "url", "created"]) else { continue }
            switch json["type"]?.stringValue {
            case "events":
                guard let epoch = json["epoch"]?.stringValue, let values = json["events"]?.arrayValue else { continue }
                let events = values.compactMap { RecordedEvent(envelope: $0, in: bytes) }
                return .events(epoch: StoreEpoch(rawValue: epoch), events)
            case "caught_up":
                return .caughtUp(head: Position(json["head"]?.int64Value ?? 0))
            default:
                continue  // a newer server may send more; ignore what we do not know
            }
        }
    }

    /// The next message off the queue; tells the handler, which reads more once few are left.
    private func nextMessage() async throws -> WebSocketMessage? {
        var iterator = self.iterator
        let message = try await iterator.next()
        self.iterator = iterator
        if message != nil {
            let handler = self.handler
            channel.eventLoop.execute { handler.value.messageConsumed() }
        }
        return message
    }

    /// Acknowledges handled events (optional; feeds the gateway's lag figures).
    public func acknowledge(_ position: Position) async throws {
        let text = ByteBuffer(string: #"{"type":"ack","position":\#(position.rawValue)}"#)
        let frame = WebSocketFrame(opcode: .text, maskKey: .random(), data: text)
        try await channel.writeAndFlush(WebSocketFrameEncoder.encode(frame, allocator: channel.allocator))
    }

    /// Closes with 1000 and waits briefly for the TCP close.
    public func close() async {
        let handler = self.handler
        try? await channel.eventLoop.submit { handler.value.closeNormally() }.get()
        let closed = channel.closeFuture
        let timeout = channel.eventLoop.scheduleTask(in: .seconds(2)) { [channel] in channel.close(promise: nil) }
        try? await closed.get()
        timeout.cancel()
    }
}

@available(*, unavailable)
extension PushChannelConnection: Sendable {}

extension WebSocketMaskingKey {
    static func random() -> WebSocketMaskingKey {
        WebSocketMaskingKey(rawValue: .random(in: .min ... .max))
    }
}

/// The client side of the connection on the event loop: reads the `101`, then runs the RFC 6455 state
/// machine in the client role.
final class PushChannelClientHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let handshake: WebSocketClientHandshake
    private let messages: AsyncThrowingStream<WebSocketMessage, any Error>.Continuation
    private var opened: AsyncThrowingStream<Void, any Error>.Continuation?
    private var buffer = ByteBuffer()
    private var parser = WebSocketFrameParser()
    private var machine: WebSocketConnectionStateMachine<ContinuousClock.Instant>?
    private var context: ChannelHandlerContext?
    private(set) var closeReceived: (code: UInt16?, reason: String)?
    /// Messages yielded and not yet taken by the connection's reader.
    private var queued = 0
    /// A read is due once the queue drains below `maximumQueued`.
    private var readPending = false
    /// Our Close is sent: read to the end regardless of the queue.
    private var closing = false
    /// Messages the client holds before it stops reading the socket (each may carry many events).
    static let maximumQueued = 4

    init(
        handshake: WebSocketClientHandshake, messages: AsyncThrowingStream<WebSocketMessage, any Error>.Continuation,
        opened: AsyncThrowingStream<Void, any Error>.Continuation
    ) {
        self.handshake = handshake
        self.messages = messages
        self.opened = opened
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { context.read() }
    }

    func channelActive(context: ChannelHandlerContext) {
        context.read()
        context.fireChannelActive()
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if closing || queued < Self.maximumQueued {
            context.read()
        } else {
            readPending = true
        }
        context.fireChannelReadComplete()
    }

    /// The connection's reader took a message: read on when the queue has room again.
    func messageConsumed() {
        queued -= 1
        guard readPending, queued < Self.maximumQueued, let context else { return }
        readPending = false
        context.read()
    }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        buffer.writeBuffer(&bytes)
        if machine == nil, !readHandshakeResponse(context: context) { return }
        while machine != nil {
            let step: WebSocketFrameParser.Step
            do {
                step = try parser.parseStep(&buffer)
            } catch {
                run(machine!.errorCaught(error, now: .now), context: context)
                return
            }
            guard case .frame(let frame) = step else { break }
            if frame.opcode == .connectionClose {
                var data = frame.data
                closeReceived = (data.readInteger(as: UInt16.self), data.readString(length: data.readableBytes) ?? "")
            }
            run(machine!.frameReceived(frame, now: .now), context: context)
        }
        buffer.discardReadBytes()
    }

    /// Parses the HTTP answer to the handshake; `false` while it is incomplete or when it failed.
    private func readHandshakeResponse(context: ChannelHandlerContext) -> Bool {
        let view = buffer.readableBytesView
        guard let end = view.firstRange(of: [13, 10, 13, 10]) else {
            if buffer.readableBytes > 16 * 1024 { fail(PushChannelError(message: "the handshake response is too large"), context: context) }
            return false
        }
        let headText = String(decoding: view[view.startIndex..<end.lowerBound], as: UTF8.self)
        buffer.moveReaderIndex(to: end.upperBound)
        var lines = headText.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst().split(separator: " ", maxSplits: 2)
        guard statusLine.count >= 2, let code = Int(statusLine[1]) else {
            fail(PushChannelError(message: "the server's answer is not HTTP: \(headText.prefix(80))"), context: context)
            return false
        }
        var headers = HTTPHeaders()
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers.add(name: String(line[..<colon]), value: String(line[line.index(after: colon)...]).trimmingCharacters(in: .whitespaces))
        }
        let head = HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: code), headers: headers)
        guard code == 101 else {
            fail(PushChannelError(refusedStatus: code, message: "the upgrade was refused with HTTP \(code)"), context: context)
            return false
        }
        do {
            let acceptance = try handshake.validate(head)
            parser = WebSocketFrameParser(configuration: .init(maxFrameSize: 64 << 20, allowedReservedBits: acceptance.deflate == nil ? [] : [.rsv1]))
            machine = WebSocketConnectionStateMachine(
                configuration: .init(role: .client, maxMessageSize: 64 << 20, pingInterval: nil), deflate: acceptance.deflate, now: .now
            )
            opened?.yield(())
            opened?.finish()
            opened = nil
            return true
        } catch {
            fail(PushChannelError(refusedStatus: code, message: "the server's handshake answer is invalid: \(error)"), context: context)
            return false
        }
    }

    /// No answer to the opening handshake in time: the connection fails (the caller reconnects or falls back).
    func handshakeTimedOut() {
        guard opened != nil, let context else { return }
        fail(PushChannelError(message: "the server did not answer the WebSocket handshake in time"), context: context)
    }

    private func fail(_ error: PushChannelError, context: ChannelHandlerContext) {
        opened?.finish(throwing: error)
        opened = nil
        messages.finish(throwing: error)
        context.close(promise: nil)
    }

    func closeNormally() {
        guard let context, var machine, machine.isOpen else {
            context?.close(promise: nil)
            return
        }
        let action = machine.close(code: .normalClosure, reason: "", now: .now)
        self.machine = machine
        run(action, context: context)
        // Read on to the server's Close, whatever is still queued.
        closing = true
        readPending = false
        context.read()
    }

    private func run(_ action: WebSocketConnectionStateMachine<ContinuousClock.Instant>.Action, context: ChannelHandlerContext) {
        switch action {
        case .none:
            break
        case .deliver(let message):
            queued += 1
            messages.yield(message)
        case .send(var frame):
            frame.maskKey = .random()
            context.writeAndFlush(wrapOutboundOut(WebSocketFrameEncoder.encode(frame, allocator: context.channel.allocator)), promise: nil)
        case .sendAndCloseConnection(var frame):
            frame.maskKey = .random()
            context.writeAndFlush(wrapOutboundOut(WebSocketFrameEncoder.encode(frame, allocator: context.channel.allocator)))
                .whenComplete { [channel = context.channel] _ in channel.close(promise: nil) }
        case .closeConnection:
            context.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        opened?.finish(throwing: error)
        opened = nil
        messages.finish(throwing: error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        opened?.finish(throwing: PushChannelError(message: "the connection closed during the handshake"))
        opened = nil
        machine?.connectionClosed()
        messages.finish()
        context.fireChannelInactive()
    }
}
