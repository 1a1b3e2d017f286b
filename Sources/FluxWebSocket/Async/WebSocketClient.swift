import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// Why ``WebSocketClient/connect(to:port:path:headers:handshake:configuration:group:)`` failed.
public struct WebSocketClientError: Error, Sendable, CustomStringConvertible {
    public var description: String
}

/// Opens client-role WebSocket connections (ws://, and wss:// with `tls`) as ``WebSocketChannel``s.
public enum WebSocketClient {
    /// Connects to `host:port`, asks for `path` with a WebSocket handshake (RFC 6455 §4.1) and returns the
    /// connection once the server accepted it with a valid `101`.
    ///
    /// - Parameters:
    ///   - headers: extra request headers (e.g. `Authorization`).
    ///   - handshake: the key, subprotocols and the permessage-deflate offer.
    ///   - configuration: limits and timers; its role must be ``WebSocketRole/client``.
    ///   - tls: speak wss://: TLS with these settings (e.g. `TLSConfiguration.makeClientConfiguration()` for the system
    ///     trust store, with `trustRoots = .file(caPEM)` for a private CA); SNI names `host` unless it is an IP address.
    /// - Throws: ``WebSocketClientError`` when the server refuses the upgrade or closes before it; NIO's errors when
    ///   it cannot connect.
    public static func connect(
        to host: String, port: Int, path: String = "/", headers: HTTPHeaders = [:],
        handshake: WebSocketClientHandshake = WebSocketClientHandshake(),
        configuration: WebSocketConnectionConfiguration = WebSocketConnectionConfiguration(role: .client),
        tls: TLSConfiguration? = nil,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> WebSocketChannel {
        let sslContext = try tls.map { try NIOSSLContext(configuration: $0) }
        let isAddress = (try? SocketAddress(ipAddress: host, port: port)) != nil
        let upgraded = group.next().makePromise(of: WebSocketChannel.self)
        let upgrader = WebSocketClientUpgrader(
            handshake: handshake, configuration: configuration, maxFrameSize: configuration.maxMessageSize,
            upgradePipelineHandler: { channel, response in
                channel.eventLoop.makeCompletedFuture {
                    let acceptance = try handshake.validate(response)
                    upgraded.succeed(try WebSocketChannel(wrapping: channel, deflate: acceptance.deflate, path: path))
                }
            }
        )
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: group)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .connectTimeout(.seconds(10))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        if let sslContext {
                            try channel.pipeline.syncOperations.addHandler(
                                try NIOSSLClientHandler(context: sslContext, serverHostname: isAddress ? nil : host)
                            )
                        }
                        try channel.pipeline.syncOperations.addWebSocketClientHandlers(upgrader: upgrader)
                        try channel.pipeline.syncOperations.addHandler(RefusedUpgradeHandler(promise: upgraded))
                    }
                }
                .connect(host: host, port: port).get()
        } catch {
            upgraded.fail(error)
            throw error
        }
        channel.closeFuture.whenComplete { _ in
            upgraded.fail(WebSocketClientError(description: "the server at \(host):\(port) closed the connection before accepting the WebSocket upgrade"))
        }
        var requestHeaders = headers
        requestHeaders.replaceOrAdd(name: "Host", value: port == (tls == nil ? 80 : 443) ? host : "\(host):\(port)")
        channel.write(HTTPClientRequestPart.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: path, headers: requestHeaders)), promise: nil)
        try await channel.writeAndFlush(HTTPClientRequestPart.end(nil)).get()
        return try await upgraded.futureResult.get()
    }
}

/// Turns a refused upgrade (NIOHTTP1 fires an error for any answer but an accepted 101) into a clear error, and
/// closes the connection.
private final class RefusedUpgradeHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    private let promise: EventLoopPromise<WebSocketChannel>

    init(promise: EventLoopPromise<WebSocketChannel>) { self.promise = promise }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.fail(WebSocketClientError(description: "the server refused the WebSocket upgrade: \(error)"))
        context.close(promise: nil)
    }
}
