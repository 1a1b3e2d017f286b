import NIOCore
import NIOHTTP1

/// Upgrades an NIOHTTP1 server connection to WebSocket: plug it into
/// `configureHTTPServerPipeline(withServerUpgrade:)`.
///
/// It validates the handshake with ``WebSocketServerHandshake`` (RFC 6455 §4.2), answers 101 with the
/// negotiated subprotocol and permessage-deflate (RFC 7692), then installs ``WebSocketConnectionHandler``, and
/// finally calls
/// `upgradePipelineHandler` so the application adds its handler (which reads and writes ``WebSocketMessage``s).
///
/// A refused handshake fails with ``Rejected``: NIOHTTP1 then fires it through `errorCaught` and passes the
/// request on to the HTTP handlers, which should answer with ``Rejected/rejection``'s status and headers.
public final class WebSocketServerUpgrader: HTTPServerProtocolUpgrader, Sendable {
    /// The error a refused handshake fails with, carrying the response to send.
    public struct Rejected: Error, Sendable, CustomStringConvertible {
        /// The status, reason and headers to answer with (RFC 6455 §4.2.2 point 4, §4.4).
        public var rejection: WebSocketServerHandshake.Rejection
        public var description: String { "WebSocket handshake refused (\(rejection.status.code)): \(rejection.reason)" }
    }

    /// Installs the application's handler(s) after ours; called on the channel's event loop.
    public typealias UpgradePipelineHandler = @Sendable (Channel, HTTPRequestHead) -> EventLoopFuture<Void>

    public let supportedProtocol = "websocket"
    /// `Sec-WebSocket-Key` and `Sec-WebSocket-Version` are checked by the handshake itself, with precise
    /// errors (400 / 426), instead of being silently skipped by NIOHTTP1's upgrade handler.
    public let requiredUpgradeHeaders: [String] = []

    private let handshake: WebSocketServerHandshake
    private let configuration: WebSocketConnectionConfiguration
    private let maxFrameSize: Int
    private let upgradePipelineHandler: UpgradePipelineHandler

    /// Creates an upgrader.
    ///
    /// - Parameters:
    ///   - handshake: subprotocols, origin check and deflate policy.
    ///   - configuration: the connection's limits and timers; its role must be ``WebSocketRole/server``.
    ///   - maxFrameSize: the largest frame payload accepted (RFC 6455 §10.4); default 16 MiB.
    ///   - upgradePipelineHandler: adds the application's handlers after the WebSocket ones.
    public init(
        handshake: WebSocketServerHandshake = WebSocketServerHandshake(),
        configuration: WebSocketConnectionConfiguration = WebSocketConnectionConfiguration(role: .server),
        maxFrameSize: Int = 1 << 24,
        upgradePipelineHandler: @escaping UpgradePipelineHandler
    ) {
        precondition(configuration.role == .server, "WebSocketServerUpgrader needs a server-role configuration")
        self.handshake = handshake
        self.configuration = configuration
        self.maxFrameSize = maxFrameSize
        self.upgradePipelineHandler = upgradePipelineHandler
    }

    public func buildUpgradeResponse(
        channel: Channel,
        upgradeRequest: HTTPRequestHead,
        initialResponseHeaders: HTTPHeaders
    ) -> EventLoopFuture<HTTPHeaders> {
        switch handshake.evaluate(upgradeRequest) {
        case .reject(let rejection):
            return channel.eventLoop.makeFailedFuture(Rejected(rejection: rejection))
        case .accept(let acceptance):
            // NIOHTTP1 already put `Upgrade` and `Connection` in the initial headers.
            var headers = initialResponseHeaders
            for (name, value) in acceptance.headers where name.lowercased().hasPrefix("sec-websocket-") {
                headers.add(name: name, value: value)
            }
            return channel.eventLoop.makeSucceededFuture(headers)
        }
    }

    public func upgrade(context: ChannelHandlerContext, upgradeRequest: HTTPRequestHead) -> EventLoopFuture<Void> {
        // The upgrader is shared by all connections, so the negotiation is recomputed rather than stored.
        guard case .accept(let acceptance) = handshake.evaluate(upgradeRequest) else {
            return context.eventLoop.makeFailedFuture(ChannelError.inappropriateOperationForState)
        }
        do {
            try Self.addHandlers(to: context.pipeline.syncOperations, configuration: configuration, deflate: acceptance.deflate, maxFrameSize: maxFrameSize)
        } catch {
            return context.eventLoop.makeFailedFuture(error)
        }
        return upgradePipelineHandler(context.channel, upgradeRequest)
    }

    /// Adds the connection handler (frames in and out, the connection's state) for an established WebSocket connection.
    /// Also usable for a client connection after ``WebSocketClientHandshake/validate(_:)``.
    public static func addHandlers(
        to pipeline: ChannelPipeline.SynchronousOperations,
        configuration: WebSocketConnectionConfiguration,
        deflate: WebSocketDeflateParameters?,
        maxFrameSize: Int = 1 << 24
    ) throws {
        try pipeline.addHandler(WebSocketConnectionHandler(configuration: configuration, deflate: deflate, maxFrameSize: maxFrameSize))
    }
}
