import FluxCore
import FluxWebSocket
import FluxWire
import Logging
import NIOCore
import NIOHTTP1

/// A consumer group's WebSocket member (`GET /groups/{name}/subscribe`, README "Consumer groups"): above the
/// connection's ``WebSocketConnectionHandler`` it speaks only the group protocol. The gateway pushes leased events
/// within the member's credit; the member settles them with `ack` / `nack` messages; when the connection ends, the
/// events it held go to the other members at once.
///
/// - gateway → member: `{"type":"events","group":G,"member":M,"events":[{"attempt":1,"event":ENVELOPE}, …]}` and,
///   for a settlement that was refused, `{"type":"error","error":"not_leased","message":…}` (the connection stays).
/// - member → gateway: `{"type":"ack","positions":[p, …]}` (1–1000 positions, all or nothing) and
///   `{"type":"nack","position":p,"reason":"…"}`. Anything else closes the connection with 1008.
final class GroupMemberHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = WebSocketMessage
    typealias OutboundOut = WebSocketOutboundMessage

    /// The largest message a member may send (1,000 positions fit easily).
    static let maxClientMessageSize = 64 * 1024
    /// Settlements a member may send ahead of the gateway's processing before it is closed (1008).
    static let maxPendingMessages = 256

    struct Settings: Sendable {
        var runtime: ConsumerGroupRuntime?
        var group: String
        var member: String
        var credit: Int
        var baseURL: String
        /// Accept the handshake, then close at once with this code and reason.
        var closeFirst: (WebSocketCloseCode, String)?
        var highWater: Int
        var pingInterval: Duration
        var pongTimeout: Duration
        /// When the member's access token expires: the connection then closes with 1008.
        var expiresAt: ContinuousClock.Instant?
        var slot: SubscriptionSlots.Slot?
        var metrics: GatewayMetrics
        var logger: Logger

        var connection: WebSocketConnectionConfiguration {
            WebSocketConnectionConfiguration(
                role: .server, maxMessageSize: GroupMemberHandler.maxClientMessageSize, pingInterval: pingInterval, pongTimeout: pongTimeout)
        }
    }

    private let settings: Settings
    private var writer: BoundedOutboundWriter?
    private var settlements: AsyncStream<GroupSettlement>.Continuation?
    private var expiry: Scheduled<Void>?
    private var closing = false

    init(settings: Settings) {
        self.settings = settings
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let writer = BoundedOutboundWriter(
            channel: context.channel, framing: .webSocketFrames, highWater: settings.highWater, lowWater: settings.highWater / 4,
            metrics: settings.metrics)
        self.writer = writer
        if let (code, reason) = settings.closeFirst {
            closeWith(code, reason, context: context)
            return
        }
        guard let runtime = settings.runtime else { return }
        let (stream, continuation) = AsyncStream.makeStream(of: GroupSettlement.self, bufferingPolicy: .bufferingOldest(Self.maxPendingMessages))
        settlements = continuation
        let settings = self.settings
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let eventLoop = context.eventLoop
        let close: @Sendable (WebSocketCloseCode, String) -> Void = { code, reason in
            eventLoop.execute {
                let (handler, context) = loopBound.value
                handler.closeWith(code, reason, context: context)
            }
        }
        // The member's task ends by itself once the connection ends (`stop()` finishes its settlements).
        Self.start(runtime: runtime, settings: settings, writer: writer, settlements: stream, close: close)
        if let expiresAt = settings.expiresAt {
            expiry = context.eventLoop.scheduleTask(at: expiresAt) {
                let (handler, context) = loopBound.value
                handler.closeWith(.policyViolation, "your access token expired; reconnect with a fresh one (unsettled events were handed out again)", context: context)
            }
        }
    }

    /// The member's work: ``serve(runtime:settings:writer:settlements:close:)``, then it leaves the group.
    @discardableResult
    private static func start(
        runtime: ConsumerGroupRuntime, settings: Settings, writer: BoundedOutboundWriter, settlements: AsyncStream<GroupSettlement>,
        close: @escaping @Sendable (WebSocketCloseCode, String) -> Void
    ) -> Task<Void, Never> {
        Task {
            await serve(runtime: runtime, settings: settings, writer: writer, settlements: settlements, close: close)
            try? await runtime.leave(settings.member)
        }
    }

    /// Pushes leased events while settling what the member sends, until the connection ends (every settlement
    /// that arrived is processed). When the gateway ends the member (the group was changed or deleted, the store
    /// failed), `close` sends the Close frame.
    private static func serve(
        runtime: ConsumerGroupRuntime, settings: Settings, writer: BoundedOutboundWriter, settlements: AsyncStream<GroupSettlement>,
        close: @escaping @Sendable (WebSocketCloseCode, String) -> Void
    ) async {
        do {
            try await runtime.attach(settings.member, credit: settings.credit)
        } catch {
            close(.tryAgainLater, "group \(settings.group) cannot take this member now; reconnect")
            return
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                if let (code, reason) = await deliver(runtime: runtime, settings: settings, writer: writer) { close(code, reason) }
            }
            // Until the connection ends (the stream finishes then): settlements in the order they came.
            for await settlement in settlements {
                if let refusal = await settle(settlement, runtime: runtime, settings: settings) {
                    try? await writer.write(SharedDeflateCompressor.preparePlain(text: refusal).plainFrame)
                }
            }
            group.cancelAll()
        }
    }

    /// Leases events to the member within its credit and writes them, until cancelled or the connection fails;
    /// returns the close to send when the gateway must end the member.
    private static func deliver(runtime: ConsumerGroupRuntime, settings: Settings, writer: BoundedOutboundWriter) async -> (WebSocketCloseCode, String)? {
        let encoder = EnvelopeEncoder(baseURL: settings.baseURL)
        while !Task.isCancelled {
            let deliveries: [ConsumerGroupRuntime.Ledger.Delivery]
            do {
                (_, deliveries) = try await runtime.fetch(member: settings.member, max: settings.credit, wait: .seconds(30))
            } catch is CancellationError {
                return nil
            } catch let error as StoreError where error.code == .conflict {
                return (.serviceRestart, "group \(settings.group) was changed, reset or deleted; reconnect")
            } catch {
                settings.logger.debug("a group member's deliveries ended", metadata: ["group": "\(settings.group)", "error": "\(error)"])
                return (.internalServerError, "the event store failed; reconnect (unsettled events are handed out again)")
            }
            guard !deliveries.isEmpty else { continue }
            var json = JSONWriter(buffer: ByteBuffer())
            GroupMessage.writeEvents(deliveries, group: settings.group, member: settings.member, into: &json) { delivery, json in
                encoder.write(delivery.event, includePayload: true, into: &json)
                return delivery.attempt
            }
            do {
                try await writer.write(SharedDeflateCompressor.preparePlain(text: json.buffer).plainFrame, events: deliveries.count)
            } catch {
                return nil  // the connection ended; the leases go back when the member leaves
            }
        }
        return nil
    }

    /// Settles one message; returns the error message to send back when the settlement was refused.
    private static func settle(_ settlement: GroupSettlement, runtime: ConsumerGroupRuntime, settings: Settings) async -> ByteBuffer? {
        func refusal(_ code: String, _ message: String) -> ByteBuffer {
            var json = JSONWriter(buffer: ByteBuffer())
            GroupMessage.writeError(code: code, message: message, into: &json)
            return json.buffer
        }
        do {
            switch settlement {
            case .ack(let positions): try await runtime.acknowledge(positions, by: settings.member)
            case .nack(let position, let reason): try await runtime.reject(position, by: settings.member, reason: reason)
            }
            return nil
        } catch let failure as ConsumerGroupRuntime.Ledger.Failure {
            switch failure {
            case .notLeased(let position, _):
                return refusal("not_leased", "event \(position.rawValue) is not leased to \(settings.member) (its lease lapsed, it was settled already, or it never was): nothing was settled")
            case .unknownMember, .notParked:
                return refusal("not_leased", "\(settings.member) holds no events of group \(settings.group): nothing was settled")
            }
        } catch {
            return refusal("conflict", "nothing was settled: \(error)")
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let message = Self.unwrapInboundIn(data)
        guard message.isText, let settlement = GroupSettlement(json: message.data.readableBytesView) else {
            closeWith(.policyViolation, #"members send only {"type":"ack","positions":[p,…]} or {"type":"nack","position":p,"reason":"…"}"#, context: context)
            return
        }
        if case .dropped = settlements?.yield(settlement) {
            closeWith(.policyViolation, "more than \(Self.maxPendingMessages) settlements ahead of the gateway; wait for events before sending more", context: context)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let closing = event as? WebSocketClosingEvent {
            settings.metrics.recordWebSocketClose(code: closing.code.rawValue)
            stop()
        } else if event is GatewayShutdownEvent {
            closeWith(.goingAway, "the server is shutting down; reconnect (unsettled events are handed out again)", context: context)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        stop()
        expiry?.cancel()
        settings.slot?.release()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        settings.logger.debug("group member channel error", metadata: ["error": "\(error)"])
        stop()
        if !(error is WebSocketError) { context.close(promise: nil) }
    }

    private func closeWith(_ code: WebSocketCloseCode, _ reason: String, context: ChannelHandlerContext) {
        guard !closing else { return }
        closing = true
        context.triggerUserOutboundEvent(WebSocketCloseRequest(code: code, reason: reason), promise: nil)
    }

    /// Ends the member: its settlements already received are still processed, then it leaves the group.
    private func stop() {
        settlements?.finish()
        settlements = nil
        writer?.fail(ChannelError.ioOnClosedChannel)
    }
}
