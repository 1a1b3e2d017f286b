import NIOCore
import NIOHTTP1

/// How a server answers WebSocket handshakes on connections that speak only WebSocket: install it with
/// ``NIOCore/ChannelPipeline/SynchronousOperations/configureWebSocketServerPipeline(upgrader:)``.
///
/// The connection's one HTTP request is checked with ``WebSocketServerHandshake`` (RFC 6455 §4.2). An accepted
/// handshake is answered `101` with the negotiated subprotocol and permessage-deflate (RFC 7692), and the connection
/// switches to WebSocket as every server connection of this library does
/// (``NIOCore/ChannelPipeline/SynchronousOperations/switchToWebSocket(removing:requestDecoder:configuration:deflate:maxFrameSize:installApplication:)``):
/// ``WebSocketConnectionHandler``, then the application's handlers, which `upgradePipelineHandler` adds. Anything
/// else — a plain HTTP request, a refused handshake — is answered with its status (`400`, `403`, `426` with
/// `Sec-WebSocket-Version: 13`) and a JSON error body, then the connection closes.
public struct WebSocketServerUpgrader: Sendable {
    /// Adds the application's handler(s) after the connection handler; called on the channel's event loop with the
    /// handshake request and what it agreed on, before any frame is read.
    public typealias UpgradePipelineHandler =
        @Sendable (Channel, HTTPRequestHead, WebSocketServerHandshake.Acceptance) throws -> Void

    let handshake: WebSocketServerHandshake
    let configuration: WebSocketConnectionConfiguration
    let maxFrameSize: Int
    let upgradePipelineHandler: UpgradePipelineHandler

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

    /// Adds the connection handler (frames in and out, the connection's state) for an established WebSocket connection.
    public static func addHandlers(
        to pipeline: ChannelPipeline.SynchronousOperations,
        configuration: WebSocketConnectionConfiguration,
        deflate: WebSocketDeflateParameters?,
        maxFrameSize: Int = 1 << 24
    ) throws {
        try pipeline.addHandler(WebSocketConnectionHandler(configuration: configuration, deflate: deflate, maxFrameSize: maxFrameSize))
    }
}
