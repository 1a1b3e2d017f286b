import FluxCore
import FluxWebSocket
import FluxWire
import Logging
import NIOCore

/// The push channel's application handler (README "Wire protocol", push channel): it sits above the connection's
/// ``WebSocketConnectionHandler``, which owns RFC 6455 (frames, pings and keep-alive, the closing handshake, reading
/// within the write high-water mark), and speaks only the subscription protocol: it drives the subscription —
/// catch-up from the store, then the hub's live tail — writing its frames with bounded memory, takes the
/// subscriber's acks, and closes with a code the subscriber can act on (token expiry, shutdown, a failed store).
final class PushChannelHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = WebSocketMessage
    typealias OutboundOut = WebSocketOutboundMessage

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

        /// The connection's RFC 6455 settings: pings and pong timeout as configured, client messages up to
        /// ``PushChannelHandler/maxClientMessageSize``.
        var connection: WebSocketConnectionConfiguration {
            WebSocketConnectionConfiguration(
                role: .server, maxMessageSize: PushChannelHandler.maxClientMessageSize, pingInterval: pingInterval, pongTimeout: pongTimeout
            )
        }
    }

    private let driver: SubscriptionDriver?
    private let settings: Settings
    private var expiry: Scheduled<Void>?
    private var subscription: Task<Void, Never>?
    private var writer: BoundedOutboundWriter?
    /// Counted in the subscribers gauge (its subscription runs).
    private var subscribed = false
    /// Its close code is counted (at most once per connection).
    private var closeCounted = false
    /// The last position the subscriber acknowledged (feeds lag figures).
    private(set) var acknowledged: Position?

    init(driver: SubscriptionDriver?, settings: Settings) {
        self.driver = driver
        self.settings = settings
    }

    /// Installed once the HTTP handlers have left the pipeline: from here frames may be written.
    func handlerAdded(context: ChannelHandlerContext) {
        let writer = BoundedOutboundWriter(
            channel: context.channel, framing: .webSocketFrames, highWater: settings.highWater, lowWater: settings.highWater / 4,
            metrics: settings.metrics
        )
        self.writer = writer
        if let (code, reason) = settings.closeFirst {
            closeWith(code, reason, context: context)
            return
        }
        if let driver { startSubscription(driver, writer: writer, context: context) }
        if let expiresAt = settings.expiresAt {
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            expiry = context.eventLoop.scheduleTask(at: expiresAt) {
                let (handler, context) = loopBound.value
                handler.closeWith(.policyViolation, "your access token expired; reconnect from your last position with a fresh one", context: context)
            }
        }
    }

    private func startSubscription(_ driver: SubscriptionDriver, writer: BoundedOutboundWriter, context: ChannelHandlerContext) {
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
                var message = JSONWriter(buffer: ByteBuffer())
                PushMessage.writeCaughtUp(head: head, into: &message)
                try await writer.write(SharedDeflateCompressor.preparePlain(text: message.buffer).plainFrame)
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

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        handleClientMessage(Self.unwrapInboundIn(data), context: context)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let closing = event as? WebSocketClosingEvent {
            // Our Close went out (ours or the echo of the subscriber's): nothing more is sent.
            countClose(closing.code)
            stopSubscription()
        } else if event is GatewayShutdownEvent {
            closeWith(.goingAway, "the server is shutting down; reconnect from your last position", context: context)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        stopSubscription()
        // No Close frame went out: the connection ended without a closing handshake (RFC 6455 §7.1.5).
        countClose(.abnormalClosure)
        expiry?.cancel()
        settings.slot?.release()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        settings.logger.debug("push channel error", metadata: ["error": "\(error)"])
        stopSubscription()
        // A protocol error is the connection handler's to answer (its Close frame is on the way); anything else
        // (TLS, I/O) ends the connection.
        if !(error is WebSocketError) { context.close(promise: nil) }
    }

    // MARK: Actions

    private func closeWith(_ code: WebSocketCloseCode, _ reason: String, context: ChannelHandlerContext) {
        context.triggerUserOutboundEvent(WebSocketCloseRequest(code: code, reason: reason), promise: nil)
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

    /// Counts the connection's close (once) by the code of the Close frame we sent, or 1006 without one.
    private func countClose(_ code: WebSocketCloseCode) {
        guard !closeCounted else { return }
        closeCounted = true
        settings.metrics.recordWebSocketClose(code: code.rawValue)
    }

    /// Subscribers may only acknowledge (``PushAcknowledgement``). Anything else is a policy violation.
    private func handleClientMessage(_ message: WebSocketMessage, context: ChannelHandlerContext) {
        if message.isText, let ack = PushAcknowledgement(json: message.data.readableBytesView) {
            acknowledged = ack.position
            settings.metrics.recordAck(ack.position)
            return
        }
        closeWith(.policyViolation, "subscribers may only send \(PushAcknowledgement.shape)", context: context)
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
