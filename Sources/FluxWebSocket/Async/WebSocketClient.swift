import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// Why ``WebSocketClient`` could not open a connection: the server refused the upgrade, did not answer it in time,
/// answered something that is not HTTP, or closed the connection before it.
///
/// A struct wrapping a private code; match with the static members (`catch WebSocketClientError.refused`).
public struct WebSocketClientError: Error, Sendable, CustomStringConvertible {
    enum Code: Hashable, Sendable {
        case refused
        case handshakeTimedOut
        case invalidResponse
        case closedBeforeUpgrade
    }

    let code: Code
    /// The status the server answered the upgrade request with, when it refused it: any status but `101`, or a `101`
    /// whose handshake headers fail ``WebSocketClientHandshake/validate(_:)`` (RFC 6455 §4.1). A server or proxy
    /// without WebSocket support answers 4xx or 5xx: a caller may then fall back to plain HTTP.
    public let status: HTTPResponseStatus?
    /// What went wrong, naming the server.
    public let description: String

    init(_ code: Code, status: HTTPResponseStatus? = nil, _ description: String) {
        self.code = code
        self.status = status
        self.description = description
    }

    /// The server answered the upgrade request with something other than a valid `101` (``status`` says what).
    public static let refused = WebSocketClientError(.refused, "")
    /// The server did not answer the upgrade request within the handshake timeout.
    public static let handshakeTimedOut = WebSocketClientError(.handshakeTimedOut, "")
    /// The server's answer is not HTTP.
    public static let invalidResponse = WebSocketClientError(.invalidResponse, "")
    /// The server closed the connection before answering the upgrade request.
    public static let closedBeforeUpgrade = WebSocketClientError(.closedBeforeUpgrade, "")

    /// Matches errors by kind, ignoring ``status`` and ``description``.
    public static func ~= (pattern: WebSocketClientError, value: any Error) -> Bool {
        (value as? WebSocketClientError)?.code == pattern.code
    }
}

/// Opens client-role WebSocket connections (ws://, and wss:// with `tls`) as ``WebSocketChannel``s.
public enum WebSocketClient {
    /// Adds handlers in front of the HTTP ones (TLS of your own, a proxy's tunnel) to a new connection, on its event
    /// loop, and returns what the connection must wait for before it sends the upgrade request (a TLS handshake).
    /// The future must complete by itself; when it fails, the connection is closed and its error thrown as it is.
    public typealias TransportInitializer = @Sendable (any Channel) throws -> EventLoopFuture<Void>

    /// Adds channel handlers of your own after ``WebSocketConnectionHandler``, on the event loop once the server
    /// accepted the upgrade and before any frame is read. They see each message first, in order with the frames around
    /// it (an echo that must answer a message before the Close right behind it); what they pass on reaches the
    /// connection's `AsyncSequence`.
    public typealias MessageHandlersInitializer = @Sendable (ChannelPipeline.SynchronousOperations) throws -> Void

    /// Connects to `host:port`, asks for `path` with a WebSocket handshake (RFC 6455 §4.1) and returns the
    /// connection once the server accepted it with a valid `101`.
    ///
    /// - Parameters:
    ///   - headers: extra request headers (e.g. `Authorization`).
    ///   - handshake: the key, subprotocols and the permessage-deflate offer.
    ///   - configuration: limits and timers; its role must be ``WebSocketRole/client``.
    ///   - tls: speak wss://: TLS with these settings (e.g. `TLSConfiguration.makeClientConfiguration()` for the system
    ///     trust store, with `trustRoots = .file(caPEM)` for a private CA); SNI names `host` unless it is an IP address.
    ///   - transport: handlers of your own in front of HTTP (after `tls`'s), see ``TransportInitializer``.
    ///   - handshakeTimeout: how long the server may take to answer the upgrade request (counted once the
    ///     transport is ready).
    ///   - backPressureStrategy: how many received messages wait unconsumed before the connection stops reading the
    ///     socket (`highWatermark`), and how few before it reads again (`lowWatermark`): this bounds what a fast
    ///     server can make a slow client hold.
    ///   - messageHandlers: handlers of your own in front of the `AsyncSequence`, see ``MessageHandlersInitializer``.
    /// - Throws: ``WebSocketClientError`` when the server refuses the upgrade (with its status), does not answer
    ///   in time, answers something that is not HTTP, or closes before answering; NIO's errors when it cannot connect;
    ///   TLS errors (and the errors of `transport`) as they are; `CancellationError` when the task is cancelled during
    ///   the handshake.
    public static func connect(
        to host: String, port: Int, path: String = "/", headers: HTTPHeaders = [:],
        handshake: WebSocketClientHandshake = WebSocketClientHandshake(),
        configuration: WebSocketConnectionConfiguration = WebSocketConnectionConfiguration(role: .client),
        tls: TLSConfiguration? = nil,
        transport: TransportInitializer? = nil,
        handshakeTimeout: Duration = .seconds(10),
        backPressureStrategy: NIOAsyncSequenceProducerBackPressureStrategies.HighLowWatermark = .init(lowWatermark: 2, highWatermark: 10),
        messageHandlers: MessageHandlersInitializer? = nil,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> WebSocketChannel {
        let sslContext = try tls.map { try NIOSSLContext(configuration: $0) }
        let isAddress = (try? SocketAddress(ipAddress: host, port: port)) != nil
        let endpoint = "\(host):\(port)"
        let transportReady = group.next().makePromise(of: Void.self)
        let upgraded = group.next().makePromise(of: WebSocketChannel.self)
        let upgrader = WebSocketClientUpgrader(
            handshake: handshake, configuration: configuration, maxFrameSize: configuration.maxMessageSize,
            upgradePipelineHandler: { channel, response in
                let result = Result {
                    let pipeline = channel.pipeline.syncOperations
                    pipeline.removeHandler(context: try pipeline.context(handlerType: UpgradeAnswerHandler.self), promise: nil)
                    try messageHandlers?(pipeline)
                    let deflate = try handshake.validate(response).deflate
                    return try WebSocketChannel(wrapping: channel, deflate: deflate, path: path, backPressureStrategy: backPressureStrategy)
                }
                upgraded.completeWith(result)
                return channel.eventLoop.makeCompletedFuture(result.map { _ in () })
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
                        transportReady.completeWith(try transport?(channel) ?? channel.eventLoop.makeSucceededVoidFuture())
                        try channel.pipeline.syncOperations.addWebSocketClientHandlers(upgrader: upgrader)
                        try channel.pipeline.syncOperations.addHandler(
                            UpgradeAnswerHandler(promise: upgraded, handshake: handshake, endpoint: endpoint))
                    }
                }
                .connect(host: host, port: port).get()
        } catch {
            // Complete the promises: a promise dropped uncompleted is a fatal error in NIO debug builds.
            transportReady.fail(error)
            upgraded.fail(error)
            throw error
        }
        channel.closeFuture.whenComplete { _ in
            upgraded.fail(WebSocketClientError(.closedBeforeUpgrade, "the server at \(endpoint) closed the connection before accepting the WebSocket upgrade"))
        }
        do {
            return try await withTaskCancellationHandler {
                try await transportReady.futureResult.get()
                let timeout = channel.eventLoop.scheduleTask(in: TimeAmount(handshakeTimeout)) {
                    upgraded.fail(WebSocketClientError(.handshakeTimedOut, "the server at \(endpoint) did not answer the WebSocket handshake within \(handshakeTimeout)"))
                    channel.close(promise: nil)
                }
                upgraded.futureResult.whenComplete { _ in timeout.cancel() }
                var requestHeaders = headers
                requestHeaders.replaceOrAdd(name: "Host", value: port == (tls == nil ? 80 : 443) ? host : endpoint)
                channel.write(HTTPClientRequestPart.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: path, headers: requestHeaders)), promise: nil)
                do {
                    try await channel.writeAndFlush(HTTPClientRequestPart.end(nil)).get()
                } catch {
                    // The request could not be written because the handshake had already failed (timed out on a
                    // slow machine, closed by the server): that failure says why, not the write's "closed channel".
                    // Closing completes `upgraded` if nothing else has.
                    channel.close(promise: nil)
                }
                return try await upgraded.futureResult.get()
            } onCancel: {
                transportReady.fail(CancellationError())
                upgraded.fail(CancellationError())
            }
        } catch {
            channel.close(promise: nil)
            throw error
        }
    }
}

/// Sees the server's answer when it is not an accepted `101` (NIOHTTP1 then passes it on as an HTTP response, after
/// firing an error for a `101` that fails the handshake checks): fails the connect with the answer's status and
/// closes the connection. Other errors before the upgrade (TLS, a response that is not HTTP) fail it too. Removed
/// from the pipeline when the upgrade is accepted.
private final class UpgradeAnswerHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    private let promise: EventLoopPromise<WebSocketChannel>
    private let handshake: WebSocketClientHandshake
    private let endpoint: String

    init(promise: EventLoopPromise<WebSocketChannel>, handshake: WebSocketClientHandshake, endpoint: String) {
        self.promise = promise
        self.handshake = handshake
        self.endpoint = endpoint
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let response) = Self.unwrapInboundIn(data) else { return }
        var message = "the server at \(endpoint) refused the WebSocket upgrade with HTTP \(response.status.code) \(response.status.reasonPhrase)"
        if response.status == .switchingProtocols {
            do {
                _ = try handshake.validate(response)
            } catch {
                message = "the server at \(endpoint) answered the WebSocket upgrade with a 101 that fails the handshake: \(error)"
            }
        }
        promise.fail(WebSocketClientError(.refused, status: response.status, message))
        context.close(promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        switch error {
        case let refusal as NIOHTTPClientUpgradeError where refusal == .upgraderDeniedUpgrade || refusal == .responseProtocolNotFound:
            return  // the response follows: `channelRead` reports its status
        case is HTTPParserError:
            promise.fail(WebSocketClientError(.invalidResponse, "the server at \(endpoint) answered the WebSocket upgrade with something that is not HTTP (\(error))"))
        default:
            promise.fail(error)
        }
        context.close(promise: nil)
    }
}
