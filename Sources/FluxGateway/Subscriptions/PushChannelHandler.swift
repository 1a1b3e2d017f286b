import FluxCore
import FluxWebSocket
import Logging
import NIOCore

/// The push channel on one WebSocket connection (PROTOCOL.md "Push channel"): parses client frames, runs
/// the RFC 6455 connection state machine (pings, close handshake, protocol errors), and drives the
/// subscription — catch-up from the store, then the hub's live tail — whose frames it writes with bounded
/// memory.
///
/// Frames from the subscription (another task) pass through this handler's `write`, so nothing follows our
/// Close frame (RFC 6455 §5.5.1).
final class PushChannelHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// 4409: the subscriber's epoch or offset belongs to another store.
    static let epochMismatch = WebSocketCloseCode(rawValue: 4409)
    /// 4400: the subscription query is malformed.
    static let badQuery = WebSocketCloseCode(rawValue: 4400)
    /// The largest message a subscriber may send (acks are tiny).
    static let maxClientMessageSize = 64 * 1024

    struct Settings: Sendable {
        var after: Position
        var deflate: WebSocketDeflateParameters?
        /// Accept the handshake, then close at once with this code and reason.
        var closeFirst: (WebSocketCloseCode, String)?
        var highWater: Int
        var pingInterval: Duration
        var pongTimeout: Duration
        /// When the subscriber's access token expires: the subscription then closes with 1008.
        var expiresAt: ContinuousClock.Instant?
        /// The subscription's place under the gateway's limit; given back when the connection ends.
        var slot: SubscriptionSlots.Slot?
        var compressor: SharedDeflateCompressor
        var metrics: GatewayMetrics
        var logger: Logger
    }

    private let driver: SubscriptionDriver?
    private let settings: Settings
    private var parser: WebSocketFrameParser
    private var machine: WebSocketConnectionStateMachine<ContinuousClock.Instant>
    private var inbound = ByteBuffer()
    private var timer: Scheduled<Void>?
    private var expiry: Scheduled<Void>?
    private var subscription: Task<Void, Never>?
    private var writer: BoundedOutboundWriter?
    private var closing = false
    /// The peer's count of our bytes acknowledged at the last timer (``TCPDeliveryProgress``).
    private var bytesAcknowledgedMark: UInt64 = 0
    /// Counted in the subscribers gauge (its subscription runs).
    private var subscribed = false
    /// Its close code is counted (at most once per connection).
    private var closeCounted = false
    /// The last position the subscriber acknowledged (feeds lag figures).
    private(set) var acknowledged: Position?
    /// A `read` held back while the connection is not writable; passed on when it is again.
    private var readHeld = false

    init(driver: SubscriptionDriver?, settings: Settings) {
        self.driver = driver
        self.settings = settings
        self.parser = WebSocketFrameParser(
            configuration: .init(maxFrameSize: Self.maxClientMessageSize, allowedReservedBits: settings.deflate == nil ? [] : [.rsv1])
        )
        self.machine = WebSocketConnectionStateMachine(
            configuration: .init(
                role: .server, maxMessageSize: Self.maxClientMessageSize, pingInterval: settings.pingInterval,
                pongTimeout: settings.pongTimeout
            ),
            deflate: settings.deflate, now: .now
        )
    }

    /// Fired through the pipeline once the HTTP handlers have left it: until then nothing may be written.
    struct Start: Sendable {}

    private func start(context: ChannelHandlerContext) {
        let writer = BoundedOutboundWriter(
            channel: context.channel, framing: .raw, highWater: settings.highWater, lowWater: settings.highWater / 4, metrics: settings.metrics
        )
        self.writer = writer
        defer { if inbound.readableBytes > 0 { processInbound(context: context) } }
        if let (code, reason) = settings.closeFirst {
            run(machine.close(code: code, reason: reason, now: .now), context: context)
            return
        }
        if let driver {
            let deflate = settings.deflate
            let compressor = settings.compressor
            let after = settings.after
            let epoch = driver.store.epoch
            let sink = PushChannelSink(writer: writer, deflate: deflate, compressor: compressor)
            let transport = SubscriptionDriver.Transport(
                sendPage: { page, encoder in
                    if deflate != nil {
                        let batch = DeliveryBatch(events: page.map { EncodedEvent($0, encoder: encoder) }, epoch: epoch)
                        try await writer.write(batch.webSocketFrame(for: deflate, compressor: compressor), events: page.count)
                    } else {
                        try await writer.write(DeliveryBatch.plainEventsFrame(page, epoch: epoch, encoder: encoder), events: page.count)
                    }
                },
                sendCaughtUp: { head in
                    let message = ByteBuffer(string: #"{"type":"caught_up","head":\#(head.rawValue)}"#)
                    try await writer.write(SharedDeflateCompressor.preparePlain(text: message).plainFrame)
                },
                sink: sink
            )
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            let eventLoop = context.eventLoop
            let logger = settings.logger
            settings.metrics.subscriberJoined(.webSocket)
            subscribed = true
            subscription = Task {
                do {
                    try await driver.run(after: after, transport: transport)
                } catch is CancellationError {
                    return
                } catch {
                    logger.debug("subscription ended", metadata: ["error": "\(error)"])
                    // The store failed under a live subscriber: close with 1011; it resumes elsewhere or later.
                    eventLoop.execute {
                        let (handler, context) = loopBound.value
                        handler.closeWith(.internalServerError, "the event store failed; reconnect from your last position", context: context)
                    }
                }
            }
        }
        scheduleTimer(context: context)
        if let expiresAt = settings.expiresAt {
            let delay = ContinuousClock.now.duration(to: expiresAt)
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            expiry = context.eventLoop.scheduleTask(in: .milliseconds(max(0, delay.components.seconds * 1000 + delay.components.attoseconds / 1_000_000_000_000_000))) {
                let (handler, context) = loopBound.value
                handler.closeWith(.policyViolation, "your access token expired; reconnect from your last position with a fresh one", context: context)
            }
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        inbound.writeBuffer(&bytes)
        guard writer != nil else { return }  // not started: keep the bytes for later
        processInbound(context: context)
    }

    /// Parses and answers the client's frames. While our unsent bytes are past the channel's high-water mark no
    /// more frames are taken (their answers, pongs and the like, would queue without bound behind a client that
    /// sends and never reads) and the connection is not read: the rest waits for ``channelWritabilityChanged``.
    private func processInbound(context: ChannelHandlerContext) {
        while context.channel.isWritable {
            let step: WebSocketFrameParser.Step
            do {
                step = try parser.parseStep(&inbound)
            } catch {
                run(machine.errorCaught(error, now: .now), context: context)
                return
            }
            guard case .frame(let frame) = step else { break }
            run(machine.frameReceived(frame, now: .now), context: context)
            if !context.channel.isActive { return }
        }
        inbound.discardReadBytes()
    }

    func read(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            context.read()
        } else {
            readHeld = true
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        context.fireChannelWritabilityChanged()
        guard context.channel.isWritable else { return }
        if writer != nil, inbound.readableBytes > 0, machine.isOpen { processInbound(context: context) }
        if readHeld, context.channel.isWritable {
            readHeld = false
            context.read()
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        // Frames of the subscription: never after our Close.
        guard machine.isOpen, !closing else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        context.write(data, promise: promise)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is Start {
            if writer == nil { start(context: context) }
        } else if event is GatewayShutdownEvent {
            closeWith(.goingAway, "the server is shutting down; reconnect from your last position", context: context)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        stopSubscription()
        if !closeCounted {
            // No Close frame went out: the connection ended without a closing handshake (RFC 6455 §7.1.5).
            closeCounted = true
            settings.metrics.recordWebSocketClose(code: WebSocketCloseCode.abnormalClosure.rawValue)
        }
        machine.connectionClosed()
        timer?.cancel()
        expiry?.cancel()
        settings.slot?.release()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        settings.logger.debug("push channel error", metadata: ["error": "\(error)"])
        stopSubscription()
        context.close(promise: nil)
    }

    // MARK: Actions

    private func closeWith(_ code: WebSocketCloseCode, _ reason: String, context: ChannelHandlerContext) {
        guard machine.isOpen else { return }
        run(machine.close(code: code, reason: reason, now: .now), context: context)
    }

    private func stopSubscription() {
        if subscribed {
            subscribed = false
            settings.metrics.subscriberLeft(.webSocket)
        }
        subscription?.cancel()
        subscription = nil
        writer?.fail(ChannelError.ioOnClosedChannel)
    }

    private func run(_ action: WebSocketConnectionStateMachine<ContinuousClock.Instant>.Action, context: ChannelHandlerContext) {
        switch action {
        case .none:
            break
        case .deliver(let message):
            handleClientMessage(message, context: context)
        case .send(let frame):
            if frame.opcode == .connectionClose {
                countClose(frame)
                beginClosing()
            }
            context.writeAndFlush(wrapOutboundOut(WebSocketFrameEncoder.encode(frame, allocator: context.channel.allocator)), promise: nil)
        case .sendAndCloseConnection(let frame):
            countClose(frame)
            beginClosing()
            let closeTimeout = machine.configuration.closeTimeout
            context.writeAndFlush(wrapOutboundOut(WebSocketFrameEncoder.encode(frame, allocator: context.channel.allocator)))
                .assumeIsolated().whenComplete { _ in context.closeAfterWebSocketPeer(within: closeTimeout) }
        case .closeConnection:
            beginClosing()
            context.close(promise: nil)
        }
        scheduleTimer(context: context)
    }

    /// Counts the connection's close by the code of the Close frame we send: ours, or the client's echoed.
    private func countClose(_ frame: WebSocketFrame) {
        guard frame.opcode == .connectionClose, !closeCounted else { return }
        closeCounted = true
        let code = frame.data.getInteger(at: frame.data.readerIndex, as: UInt16.self)
        settings.metrics.recordWebSocketClose(code: code ?? WebSocketCloseCode.noStatusReceived.rawValue)
    }

    private func beginClosing() {
        closing = true
        stopSubscription()
    }

    /// Subscribers may only acknowledge: `{"type": "ack", "position": N}`. Anything else is a policy violation.
    private func handleClientMessage(_ message: WebSocketMessage, context: ChannelHandlerContext) {
        if message.isText,
            let json = try? JSONParser.parse(message.data.readableBytesView),
            json["type"]?.stringValue == "ack",
            let position = json["position"]?.int64Value, position >= 0
        {
            acknowledged = Position(position)
            settings.metrics.recordAck(Position(position))
            return
        }
        closeWith(.policyViolation, #"subscribers may only send {"type": "ack", "position": N}"#, context: context)
    }

    private func scheduleTimer(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        guard let deadline = machine.nextDeadline else { return }
        let delay = ContinuousClock.now.duration(to: deadline)
        let nanoseconds = max(0, delay.components.seconds * 1_000_000_000 + delay.components.attoseconds / 1_000_000_000)
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(in: .nanoseconds(nanoseconds)) {
            let (handler, context) = loopBound.value
            handler.timer = nil
            handler.timerFired(context: context)
        }
    }

    /// A ping is due or a pong overdue. A subscriber whose TCP took in more of our bytes since the last look is
    /// reading its way to the ping (PROTOCOL.md: a slow reader is not a dead peer) and gets more time.
    private func timerFired(context: ChannelHandlerContext) {
        TCPDeliveryProgress.bytesAcknowledged(on: context.channel).assumeIsolated().whenSuccess { [self] acknowledged in
            if let acknowledged, acknowledged != bytesAcknowledgedMark {
                bytesAcknowledgedMark = acknowledged
                machine.peerShowedLife(now: .now)
            }
            run(machine.timerFired(now: .now), context: context)
        }
    }
}

/// The hub's side of a WebSocket subscriber: the shared frame for its deflate setting, within its high-water mark.
final class PushChannelSink: SubscriberSink {
    let writer: BoundedOutboundWriter
    let deflate: WebSocketDeflateParameters?
    let compressor: SharedDeflateCompressor

    init(writer: BoundedOutboundWriter, deflate: WebSocketDeflateParameters?, compressor: SharedDeflateCompressor) {
        self.writer = writer
        self.deflate = deflate
        self.compressor = compressor
    }

    func offer(_ batch: DeliveryBatch, writes: OutboundWriteBatch) -> Bool {
        writer.offer(batch.webSocketFrame(for: deflate, compressor: compressor), events: batch.events.count, batch: writes)
    }
}
