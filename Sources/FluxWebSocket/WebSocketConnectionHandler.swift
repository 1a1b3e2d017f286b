import NIOCore

/// Drives ``WebSocketConnectionStateMachine`` in a channel pipeline: one machine call per event, one
/// ``run(_:context:)`` switch that carries the action out.
///
/// Inbound it takes ``WebSocketFrame``s (from ``WebSocketFrameDecoder``) and passes on complete
/// ``WebSocketMessage``s; outbound it takes ``WebSocketMessage``s, compresses them when permessage-deflate
/// was negotiated (RFC 7692 §7.2.1), and writes ``WebSocketFrame``s (to ``WebSocketFrameEncoderHandler``).
/// Closing the channel starts the closing handshake (RFC 6455 §7.1.2); the close completes when TCP closes.
public final class WebSocketConnectionHandler: ChannelDuplexHandler {
    public typealias InboundIn = WebSocketFrame
    public typealias InboundOut = WebSocketMessage
    public typealias OutboundIn = WebSocketMessage
    public typealias OutboundOut = WebSocketFrame

    private let configuration: WebSocketConnectionConfiguration
    private let deflate: WebSocketDeflateParameters?
    private var machine: WebSocketConnectionStateMachine<WebSocketEventLoopInstant>?
    private var compressor: WebSocketDeflateCompressor?
    private var timer: Scheduled<Void>?
    private var timerDeadline: WebSocketEventLoopInstant?
    /// The peer's count of our bytes acknowledged at the last timer (``TCPDeliveryProgress``).
    private var bytesAcknowledgedMark: UInt64 = 0

    /// Creates the handler for a connection whose handshake agreed on `deflate` (or nothing).
    public init(configuration: WebSocketConnectionConfiguration, deflate: WebSocketDeflateParameters? = nil) {
        self.configuration = configuration
        self.deflate = deflate
    }

    /// The close code that ended the connection, once it is closing or closed (RFC 6455 §7.1.5).
    public var closeCode: WebSocketCloseCode? { machine?.closeCode }

    // MARK: Lifecycle

    public func handlerAdded(context: ChannelHandlerContext) {
        let isServer = configuration.role == .server
        machine = WebSocketConnectionStateMachine(
            configuration: configuration, deflate: deflate, now: now(context), allocator: context.channel.allocator)
        compressor = deflate.map { WebSocketDeflateCompressor(configuration: $0.compressorConfiguration(isServer: isServer)) }
        updateTimer(context: context)
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        cancelTimer()
    }

    public func channelInactive(context: ChannelHandlerContext) {
        machine?.connectionClosed()
        cancelTimer()
        context.fireChannelInactive()
    }

    // MARK: Inbound

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard machine != nil else { return }
        let frame = Self.unwrapInboundIn(data)
        let action = machine!.frameReceived(frame, now: now(context))
        run(action, context: context)
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let error = error as? WebSocketError, machine != nil {
            let action = machine!.errorCaught(error, now: now(context))
            run(action, context: context)
        }
        context.fireErrorCaught(error)
    }

    // MARK: Outbound

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let message = Self.unwrapOutboundIn(data)
        guard machine?.isOpen == true else {
            promise?.fail(ChannelError.outputClosed)
            return
        }
        var frame = WebSocketFrame(opcode: message.opcode, data: message.data)
        if let compressor, message.data.readableBytes > 0 {
            frame.data = compressor.compress(message.data, allocator: context.channel.allocator)
            frame.rsv1 = true
        }
        context.write(Self.wrapOutboundOut(frame), promise: promise)
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

    private func run(_ action: WebSocketConnectionStateMachine<WebSocketEventLoopInstant>.Action, context: ChannelHandlerContext) {
        switch action {
        case .none:
            break
        case .deliver(let message):
            context.fireChannelRead(Self.wrapInboundOut(message))
        case .send(let frame):
            context.writeAndFlush(Self.wrapOutboundOut(frame), promise: nil)
        case .sendAndCloseConnection(let frame):
            context.writeAndFlush(Self.wrapOutboundOut(frame)).assumeIsolated().whenComplete { [configuration] _ in
                context.closeAfterWebSocketPeer(within: configuration.closeTimeout)
            }
        case .closeConnection:
            context.close(promise: nil)
        }
        updateTimer(context: context)
    }

    private func now(_ context: ChannelHandlerContext) -> WebSocketEventLoopInstant {
        WebSocketEventLoopInstant(context.eventLoop.now)
    }

    /// Keeps exactly one scheduled task, at the machine's next deadline.
    private func updateTimer(context: ChannelHandlerContext) {
        let deadline = machine?.nextDeadline
        guard deadline != timerDeadline else { return }
        cancelTimer()
        guard let deadline else { return }
        timerDeadline = deadline
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline.deadline) { [self] in
            timer = nil
            timerDeadline = nil
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

    private func cancelTimer() {
        timer?.cancel()
        timer = nil
        timerDeadline = nil
    }
}

@available(*, unavailable)
extension WebSocketConnectionHandler: Sendable {}
