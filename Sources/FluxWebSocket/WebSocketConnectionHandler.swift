import NIOCore

/// A WebSocket connection in a channel pipeline: parses the peer's bytes into frames (``WebSocketFrameParser``),
/// drives ``WebSocketConnectionStateMachine`` with them (one machine call per event, one ``run(_:context:)``
/// switch that carries the action out) and writes frames as bytes (``WebSocketFrameEncoder``).
///
/// Inbound it takes the connection's bytes and passes on complete ``WebSocketMessage``s; outbound it takes
/// ``WebSocketOutboundMessage``s: messages it compresses when permessage-deflate was negotiated (RFC 7692 §7.2.1)
/// and frames, masked with a fresh key in the client role (RFC 6455 §5.3), or frames encoded once for many
/// connections, written as they are. Closing the channel (or ``WebSocketCloseRequest``) starts the closing handshake
/// (RFC 6455 §7.1.2); the close completes when TCP closes. When its Close frame goes out it fires
/// ``WebSocketClosingEvent``.
///
/// Every WebSocket of the product runs on it: the gateway's push channel, the consumer, the conformance testees.
/// It bounds what a peer can make it hold: it reads only while its unsent bytes are below the channel's high-water
/// mark (a peer that sends pings and never reads the pongs stops being read), keeps the peer alive with pings under
/// the TCP-progress rule (``TCPDeliveryProgress``), and closes lingering (``closeAfterWebSocketPeer(within:)``).
///
/// Parsing and encoding happen here rather than in handlers of their own: every hop between handlers boxes a
/// frame in `NIOAny` and casts it back, which cost more per message than the parsing itself.
public final class WebSocketConnectionHandler: ChannelDuplexHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = WebSocketMessage
    public typealias OutboundIn = WebSocketOutboundMessage
    public typealias OutboundOut = ByteBuffer

    /// Unmasked payloads up to this size are copied next to their header (one buffer); larger ones are written as
    /// they are, after a buffer holding the header.
    static let copyThreshold = 1024

    private let configuration: WebSocketConnectionConfiguration
    private let deflate: WebSocketDeflateParameters?
    private var parser: WebSocketFrameParser
    /// Bytes of a frame that has not fully arrived yet.
    private var unparsed: ByteBuffer?
    /// A protocol error failed the connection: nothing after it is read (RFC 6455 §7.1.7).
    private var inputFailed = false
    /// `channelRead` is parsing (a nested call only queues its bytes in `unparsed`).
    private var parsing = false
    /// A `read` held back while the connection is not writable; passed on when it is again.
    private var readHeld = false
    private var machine: WebSocketConnectionStateMachine<EventLoopInstant>?
    private var compressor: WebSocketDeflateCompressor?
    /// ``WebSocketClosingEvent`` was fired.
    private var closingAnnounced = false
    private let timer = EventLoopDeadlineTimer()
    /// The peer's count of our bytes acknowledged at the last timer (``TCPDeliveryProgress``).
    private var bytesAcknowledgedMark: UInt64 = 0

    /// Creates the handler for a connection whose handshake agreed on `deflate` (or nothing).
    ///
    /// - Parameter maxFrameSize: the largest frame payload accepted (RFC 6455 §10.4); a larger one fails the
    ///   connection with 1009.
    public init(configuration: WebSocketConnectionConfiguration, deflate: WebSocketDeflateParameters? = nil, maxFrameSize: Int = 1 << 24) {
        self.configuration = configuration
        self.deflate = deflate
        self.parser = WebSocketFrameParser(
            configuration: WebSocketFrameParser.Configuration(maxFrameSize: maxFrameSize, allowedReservedBits: deflate == nil ? [] : .rsv1))
    }

    /// The close code that ended the connection, once it is closing or closed (RFC 6455 §7.1.5).
    public var closeCode: WebSocketCloseCode? { machine?.closeCode }

    /// The peer's Close frame (code and reason), once it arrived; with it the closing handshake is complete
    /// (``WebSocketConnectionStateMachine/receivedClose``).
    public var receivedClose: WebSocketClosePayload? { machine?.receivedClose }

    // MARK: Lifecycle

    public func handlerAdded(context: ChannelHandlerContext) {
        machine = WebSocketConnectionStateMachine(
            configuration: configuration, deflate: deflate, now: now(context), allocator: context.channel.allocator)
        updateTimer(context: context)
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        timer.cancel()
    }

    public func channelInactive(context: ChannelHandlerContext) {
        machine?.connectionClosed()
        timer.cancel()
        context.fireChannelInactive()
    }

    // MARK: Inbound

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard machine != nil, !inputFailed else { return }
        var bytes = Self.unwrapInboundIn(data)
        var buffer: ByteBuffer
        if var pending = unparsed.take() {
            pending.writeBuffer(&bytes)
            buffer = pending
        } else {
            buffer = bytes
        }
        if parsing {
            // Called again from a handler of a message being delivered: the running loop parses these bytes next.
            unparsed = buffer
            return
        }
        parse(&buffer, context: context)
    }

    /// Parses frames out of `buffer` and acts on them until it holds no whole frame, or until our unsent bytes
    /// pass the channel's high-water mark: then the rest waits (and the connection is not read) until the peer
    /// has read some, so a peer that sends pings and never reads the pongs cannot make us queue without bound.
    private func parse(_ buffer: inout ByteBuffer, context: ChannelHandlerContext) {
        parsing = true
        defer { parsing = false }
        while context.channel.isWritable {
            let step: WebSocketFrameParser.Step
            do {
                step = try parser.parseStep(&buffer)
            } catch {
                inputFailed = true
                unparsed = nil
                run(machine!.errorCaught(error, now: now(context)), context: context)
                context.fireErrorCaught(error)
                return
            }
            guard case .frame(let frame) = step else {
                guard var more = unparsed.take() else { break }
                buffer.writeBuffer(&more)
                continue
            }
            run(machine!.frameReceived(frame, now: now(context)), context: context)
        }
        if var more = unparsed.take() { buffer.writeBuffer(&more) }
        if buffer.readableBytes > 0 {
            // Part of a frame, or frames waiting for writability: keep them (without the frames before them once
            // they take up most of the buffer).
            if buffer.readerIndex > buffer.readableBytes { buffer.discardReadBytes() }
            unparsed = buffer
        }
    }

    public func read(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            context.read()
        } else {
            readHeld = true
        }
    }

    public func channelWritabilityChanged(context: ChannelHandlerContext) {
        context.fireChannelWritabilityChanged()
        guard context.channel.isWritable, machine != nil else { return }
        if !parsing, !inputFailed, var buffer = unparsed.take() {
            parse(&buffer, context: context)
        }
        if readHeld, context.channel.isWritable {
            readHeld = false
            context.read()
        }
    }

    // MARK: Outbound

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard machine?.isOpen == true else {
            promise?.fail(ChannelError.outputClosed)
            return
        }
        switch Self.unwrapOutboundIn(data) {
        case .message(let message):
            var frame = WebSocketFrame(opcode: message.opcode, data: message.data)
            if let deflate, message.data.readableBytes > 0 {
                // Made at the first message to compress: a zlib stream is large, and many connections never need one.
                let compressor =
                    compressor
                    ?? WebSocketDeflateCompressor(configuration: deflate.compressorConfiguration(isServer: configuration.role == .server))
                self.compressor = compressor
                frame.data = compressor.compress(message.data, allocator: context.channel.allocator)
                frame.rsv1 = true
            }
            write(frame, context: context, promise: promise)
        case .encodedFrame(let bytes):
            precondition(configuration.role == .server, "encoded frames are unmasked: only a server may write them")
            context.write(Self.wrapOutboundOut(bytes), promise: promise)
        }
    }

    /// Writes `frame` as bytes: masked with a fresh key in the client role, unmasked in the server role.
    private func write(_ frame: WebSocketFrame, context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) {
        var frame = frame
        frame.maskKey = configuration.role == .client ? .random() : nil
        let length = frame.data.readableBytes
        if frame.maskKey != nil || length <= Self.copyThreshold {
            var buffer = context.channel.allocator.buffer(
                capacity: WebSocketFrameEncoder.headerSize(payloadLength: length, masked: frame.maskKey != nil) + length)
            WebSocketFrameEncoder.encode(frame, into: &buffer)
            context.write(Self.wrapOutboundOut(buffer), promise: promise)
        } else {
            var header = context.channel.allocator.buffer(capacity: WebSocketFrameEncoder.headerSize(payloadLength: length, masked: false))
            WebSocketFrameEncoder.writeHeader(of: frame, into: &header)
            context.write(Self.wrapOutboundOut(header), promise: nil)
            context.write(Self.wrapOutboundOut(frame.data), promise: promise)
        }
    }

    /// Closing the channel sends our Close frame first and closes TCP when the handshake ends or times out.
    public func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        guard mode == .all, machine?.isOpen == true else {
            context.close(mode: mode, promise: promise)
            return
        }
        promise.map { context.channel.closeFuture.cascade(to: $0) }
        let action = machine!.close(code: .normalClosure, now: now(context))
        run(action, context: context)
    }

    /// ``WebSocketCloseRequest`` starts the closing handshake with its code and reason.
    public func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        guard let request = event as? WebSocketCloseRequest else {
            context.triggerUserOutboundEvent(event, promise: promise)
            return
        }
        if machine?.isOpen == true {
            let action = machine!.close(code: request.code, reason: request.reason, now: now(context))
            run(action, context: context)
        }
        promise?.succeed(())
    }

    // MARK: Actions and time

    private func run(_ action: WebSocketConnectionStateMachine<EventLoopInstant>.Action, context: ChannelHandlerContext) {
        switch action {
        case .none:
            break
        case .deliver(let message):
            context.fireChannelRead(Self.wrapInboundOut(message))
        case .send(let frame):
            write(frame, context: context, promise: nil)
            context.flush()
            if frame.opcode == .connectionClose { closing(context: context) }
        case .sendAndCloseConnection(let frame):
            let written = context.eventLoop.makePromise(of: Void.self)
            write(frame, context: context, promise: written)
            context.flush()
            closing(context: context)
            written.futureResult.assumeIsolated().whenComplete { [configuration] _ in
                context.closeAfterWebSocketPeer(within: configuration.closeTimeout)
            }
        case .closeConnection:
            context.close(promise: nil)
        }
        updateTimer(context: context)
    }

    /// Our Close frame went out: tell the application (once).
    private func closing(context: ChannelHandlerContext) {
        guard !closingAnnounced, let code = machine?.closeCode else { return }
        closingAnnounced = true
        context.fireUserInboundEventTriggered(WebSocketClosingEvent(code: code))
    }

    private func now(_ context: ChannelHandlerContext) -> EventLoopInstant {
        .now(on: context.eventLoop)
    }

    /// Keeps exactly one scheduled task, at the machine's next deadline.
    private func updateTimer(context: ChannelHandlerContext) {
        let deadline = machine?.nextDeadline
        // Called after every message: when the deadline stays, no closure is made (it would cost an allocation each).
        guard deadline != timer.deadline else { return }
        timer.schedule(at: deadline, on: context.eventLoop) { [self] in
            timerFired(context: context)
        }
    }

    /// A ping is due or a pong overdue. A peer whose TCP took in more of our bytes since the last look is reading
    /// its way to the ping behind a backlog, and gets more time (``TCPDeliveryProgress``).
    private func timerFired(context: ChannelHandlerContext) {
        TCPDeliveryProgress.bytesAcknowledged(on: context.channel).assumeIsolated().whenSuccess { [self] acknowledged in
            guard machine != nil else { return }
            if let acknowledged, acknowledged != bytesAcknowledgedMark {
                bytesAcknowledgedMark = acknowledged
                machine!.peerShowedLife(now: now(context))
            }
            let action = machine!.timerFired(now: now(context))
            run(action, context: context)
        }
    }
}

@available(*, unavailable)
extension WebSocketConnectionHandler: Sendable {}
