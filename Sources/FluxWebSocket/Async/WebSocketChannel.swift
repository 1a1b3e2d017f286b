import NIOCore

/// A WebSocket connection for async code: an `AsyncSequence` of messages in, async sends out, both with
/// backpressure (NIO's `NIOAsyncChannel`: reading stops while the sequence is not consumed; a send waits while the
/// socket is not writable), and the closing handshake when done.
///
/// ```swift
/// let socket = try await WebSocketClient.connect(to: "127.0.0.1", port: 9001, path: "/")
/// try await socket.executeThenClose { inbound, outbound in
///     try await outbound.send(text: "hello")
///     for try await message in inbound { print(String(buffer: message.data)) }
/// }
/// ```
public struct WebSocketChannel: Sendable {
    /// The underlying NIO channel, already past the handshake.
    public let asyncChannel: NIOAsyncChannel<WebSocketMessage, WebSocketOutboundMessage>
    /// The permessage-deflate parameters the handshake agreed on, or `nil`.
    public let deflate: WebSocketDeflateParameters?
    /// The request path (server role: what the client asked for; client role: what it asked for).
    public let path: String

    /// The connection's handler, kept to read its close code after the pipeline is gone.
    private let handler: NIOLoopBound<WebSocketConnectionHandler>

    /// Wraps `channel`, whose pipeline holds the WebSocket handlers; call it on the channel's event loop.
    ///
    /// - Parameter backPressureStrategy: how many received messages wait for the application before the connection
    ///   stops reading (`highWatermark`), and how few before it reads again (`lowWatermark`).
    init(
        wrapping channel: any Channel, deflate: WebSocketDeflateParameters?, path: String,
        backPressureStrategy: NIOAsyncSequenceProducerBackPressureStrategies.HighLowWatermark = .init(lowWatermark: 2, highWatermark: 10)
    ) throws {
        self.handler = NIOLoopBound(try channel.pipeline.syncOperations.handler(type: WebSocketConnectionHandler.self), eventLoop: channel.eventLoop)
        self.asyncChannel = try NIOAsyncChannel<WebSocketMessage, WebSocketOutboundMessage>(
            wrappingChannelSynchronously: channel, configuration: .init(backPressureStrategy: backPressureStrategy))
        self.deflate = deflate
        self.path = path
    }

    /// Runs `body` with the connection's messages and a sender; when it returns or throws, the closing handshake
    /// runs (close code 1000 unless ``WebSocketOutbound/close(code:reason:)`` chose another) and TCP is closed.
    public func executeThenClose<Result: Sendable>(
        _ body: (_ inbound: NIOAsyncChannelInboundStream<WebSocketMessage>, _ outbound: WebSocketOutbound) async throws -> Result
    ) async throws -> Result {
        let channel = asyncChannel.channel
        return try await asyncChannel.executeThenClose { inbound, writer in
            try await body(inbound, WebSocketOutbound(writer: writer, channel: channel))
        }
    }

    /// The close code of the closing handshake (sent or received first), once the connection is closing or closed.
    public func closeCode() async -> WebSocketCloseCode? {
        let handler = self.handler
        return try? await asyncChannel.channel.eventLoop.submit { handler.value.closeCode }.get()
    }

    /// The peer's Close frame (its code, `nil` for an empty one, and its reason) once it arrived: the closing
    /// handshake is then complete (RFC 6455 §7.1.4). `nil` while none came, and for good when the connection was
    /// failed or TCP closed without one.
    public func receivedClose() async -> WebSocketClosePayload? {
        let handler = self.handler
        return try? await asyncChannel.channel.eventLoop.submit { handler.value.receivedClose }.get()
    }
}

/// Sends messages on a ``WebSocketChannel``.
public struct WebSocketOutbound: Sendable {
    let writer: NIOAsyncChannelOutboundWriter<WebSocketOutboundMessage>
    let channel: any Channel

    /// Sends a message; waits while the socket is not writable (backpressure).
    public func send(_ message: WebSocketMessage) async throws {
        try await writer.write(.message(message))
    }

    /// Sends a text message.
    public func send(text: String) async throws {
        try await send(WebSocketMessage(opcode: .text, data: ByteBuffer(string: text)))
    }

    /// Sends a binary message.
    public func send(binary: ByteBuffer) async throws {
        try await send(WebSocketMessage(opcode: .binary, data: binary))
    }

    /// Starts the closing handshake with `code` and `reason` (RFC 6455 §7.1.2) and waits until TCP is closed.
    public func close(code: WebSocketCloseCode = .normalClosure, reason: String = "") async throws {
        channel.triggerUserOutboundEvent(WebSocketCloseRequest(code: code, reason: reason), promise: nil)
        try await channel.closeFuture.get()
    }
}

/// An outbound user event for ``WebSocketConnectionHandler``: start the closing handshake with this code and reason.
public struct WebSocketCloseRequest: Sendable, Hashable {
    public var code: WebSocketCloseCode
    public var reason: String

    public init(code: WebSocketCloseCode = .normalClosure, reason: String = "") {
        self.code = code
        self.reason = reason
    }
}
