import NIOCore
import NIOHTTP1

/// Upgrades an NIOHTTP1 client connection to WebSocket: install it with
/// ``NIOCore/ChannelPipeline/SynchronousOperations/addWebSocketClientHandlers(upgrader:completionHandler:)``
/// (not NIOHTTP1's `addHTTPClientHandlers(withClientUpgrade:)` with its defaults, which drops a frame sent
/// right behind the `101` response), then write a `GET` request head (with `Host`) and `.end`.
///
/// It adds the handshake headers of ``WebSocketClientHandshake`` to that request (RFC 6455 §4.1), accepts
/// the upgrade only if the response passes ``WebSocketClientHandshake/validate(_:)``, then installs
/// ``WebSocketConnectionHandler`` in the client role (masking every frame it writes), and calls
/// `upgradePipelineHandler`.
public final class WebSocketClientUpgrader: NIOHTTPClientProtocolUpgrader, Sendable {
    /// Installs the application's handler(s) after ours; called on the channel's event loop.
    public typealias UpgradePipelineHandler = @Sendable (Channel, HTTPResponseHead) -> EventLoopFuture<Void>

    public let supportedProtocol = "websocket"
    public let requiredUpgradeHeaders: [String] = []

    /// The handshake in progress (its key is fixed for this upgrader: make one upgrader per connection).
    public let handshake: WebSocketClientHandshake
    private let configuration: WebSocketConnectionConfiguration
    private let maxFrameSize: Int
    private let upgradePipelineHandler: UpgradePipelineHandler

    /// Creates an upgrader for one connection.
    ///
    /// - Parameters:
    ///   - handshake: the key, subprotocols and deflate offer.
    ///   - configuration: the connection's limits and timers; its role must be ``WebSocketRole/client``.
    ///   - maxFrameSize: the largest frame payload accepted (RFC 6455 §10.4); default 16 MiB.
    ///   - upgradePipelineHandler: adds the application's handlers after the WebSocket ones.
    public init(
        handshake: WebSocketClientHandshake = WebSocketClientHandshake(),
        configuration: WebSocketConnectionConfiguration = WebSocketConnectionConfiguration(role: .client),
        maxFrameSize: Int = 1 << 24,
        upgradePipelineHandler: @escaping UpgradePipelineHandler
    ) {
        precondition(configuration.role == .client, "WebSocketClientUpgrader needs a client-role configuration")
        self.handshake = handshake
        self.configuration = configuration
        self.maxFrameSize = maxFrameSize
        self.upgradePipelineHandler = upgradePipelineHandler
    }

    public func addCustom(upgradeRequestHeaders: inout HTTPHeaders) {
        // NIOHTTP1 adds `Upgrade` and `Connection`; take the rest from our request head.
        let head = handshake.requestHead(host: "", path: "/")
        for (name, value) in head.headers where name.lowercased().hasPrefix("sec-websocket-") {
            upgradeRequestHeaders.replaceOrAdd(name: name, value: value)
        }
    }

    public func shouldAllowUpgrade(upgradeResponse: HTTPResponseHead) -> Bool {
        (try? handshake.validate(upgradeResponse)) != nil
    }

    public func upgrade(context: ChannelHandlerContext, upgradeResponse: HTTPResponseHead) -> EventLoopFuture<Void> {
        do {
            let acceptance = try handshake.validate(upgradeResponse)
            try WebSocketServerUpgrader.addHandlers(
                to: context.pipeline.syncOperations, configuration: configuration, deflate: acceptance.deflate, maxFrameSize: maxFrameSize)
        } catch {
            return context.eventLoop.makeFailedFuture(error)
        }
        return upgradePipelineHandler(context.channel, upgradeResponse)
    }
}

extension ChannelPipeline.SynchronousOperations {
    /// Adds the HTTP/1.1 client handlers and a ``WebSocketClientUpgrader``, keeping the bytes that arrive
    /// behind the server's `101 Switching Protocols` response.
    ///
    /// A server may send its first frames as soon as it has sent the `101` (RFC 6455 §4.2.2 point 5: the
    /// connection is then open), so they often arrive in the same TCP read as the response. NIOHTTP1's
    /// `addHTTPClientHandlers(withClientUpgrade:)` drops such bytes by default (`RemoveAfterUpgradeStrategy
    /// .dropBytes`): the server's first message is then lost and the connection hangs waiting for it. This
    /// uses `.forwardBytes`, which hands those bytes to the ``WebSocketConnectionHandler`` the upgrade installs.
    ///
    /// Call it on the channel's event loop (in a `channelInitializer`).
    ///
    /// - Parameters:
    ///   - upgrader: the upgrader for this connection.
    ///   - completionHandler: called once the HTTP handlers are gone, before the WebSocket ones are added.
    public func addWebSocketClientHandlers(
        upgrader: WebSocketClientUpgrader,
        completionHandler: @escaping @Sendable (ChannelHandlerContext) -> Void = { _ in }
    ) throws {
        try addHTTPClientHandlers(
            leftOverBytesStrategy: .forwardBytes,
            withClientUpgrade: (upgraders: [upgrader], completionHandler: completionHandler))
    }
}
