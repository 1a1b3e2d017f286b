import NIOCore
import NIOHTTP1
import NIOPosix

/// Accepts server-role WebSocket connections (ws://) as ``WebSocketChannel``s.
public enum WebSocketServer {
    /// Binds `host:port` and returns the listening channel, whose inbound sequence yields one ``PendingWebSocket``
    /// per accepted TCP connection; its ``PendingWebSocket/handshake()`` gives the ``WebSocketChannel`` once the
    /// client's handshake is accepted (the connection must be read for that, so it cannot be awaited before it is
    /// yielded). Plain HTTP requests and refused handshakes get an HTTP error (400, 426) and are closed; their
    /// `handshake()` throws.
    ///
    /// ```swift
    /// let server = try await WebSocketServer.bind(host: "127.0.0.1", port: 9001)
    /// try await server.executeThenClose { connections in
    ///     try await withThrowingDiscardingTaskGroup { group in
    ///         for try await pending in connections {
    ///             group.addTask {
    ///                 guard let socket = try? await pending.handshake() else { return }
    ///                 try await socket.executeThenClose { inbound, outbound in
    ///                     for try await message in inbound { try await outbound.send(message) }
    ///                 }
    ///             }
    ///         }
    ///     }
    /// }
    /// ```
    public static func bind(
        host: String, port: Int, handshake: WebSocketServerHandshake = WebSocketServerHandshake(),
        configuration: WebSocketConnectionConfiguration = WebSocketConnectionConfiguration(role: .server),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> NIOAsyncChannel<PendingWebSocket, Never> {
        try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .bind(host: host, port: port) { channel in
                let upgraded = channel.eventLoop.makePromise(of: WebSocketChannel.self)
                channel.closeFuture.whenComplete { _ in
                    upgraded.fail(WebSocketClientError(.closedBeforeUpgrade, "the connection closed before a WebSocket handshake"))
                }
                let upgrader = WebSocketServerUpgrader(
                    handshake: handshake, configuration: configuration, maxFrameSize: configuration.maxMessageSize,
                    upgradePipelineHandler: { channel, request, acceptance in
                        upgraded.succeed(try WebSocketChannel(wrapping: channel, deflate: acceptance.deflate, path: request.uri))
                    }
                )
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureWebSocketServerPipeline(upgrader: upgrader)
                    return PendingWebSocket(upgraded: upgraded.futureResult)
                }
            }
    }
}

/// An accepted TCP connection whose WebSocket handshake is under way.
public struct PendingWebSocket: Sendable {
    let upgraded: EventLoopFuture<WebSocketChannel>

    /// The connection once its handshake is accepted; throws when the client sent something else or left.
    public func handshake() async throws -> WebSocketChannel {
        try await upgraded.get()
    }
}
