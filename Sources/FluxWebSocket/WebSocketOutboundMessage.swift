import NIOCore

/// What an application writes to a ``WebSocketConnectionHandler``: a message for the handler to frame (and compress
/// and mask as the connection needs), or a frame encoded once for many connections.
///
/// Small enough to travel through the pipeline without an allocation (`NIOAny` holds it inline, like
/// ``WebSocketMessage``).
public enum WebSocketOutboundMessage: Sendable {
    /// A data message: the handler compresses it when permessage-deflate was negotiated and writes its frame,
    /// masked in the client role.
    case message(WebSocketMessage)
    /// A complete, unmasked frame (server role only), written as it is: the bytes of
    /// ``WebSocketPreparedMessage/bytes(for:)`` or ``WebSocketFrameEncoder/frame(_:reservedHeaderBytes:opcode:)``.
    /// Its RSV1 bit must agree with the connection's permessage-deflate negotiation.
    case encodedFrame(ByteBuffer)

    /// A text message.
    public static func text(_ data: ByteBuffer) -> WebSocketOutboundMessage { .message(WebSocketMessage(opcode: .text, data: data)) }
}

/// Fired inbound by ``WebSocketConnectionHandler`` when the closing handshake starts on its side: the Close frame it
/// sends (its own, or the echo of the peer's) carries `code`. Nothing can be sent after it; applications stop
/// producing and count the close (a connection that ends without one closed abnormally, 1006).
public struct WebSocketClosingEvent: Sendable, Hashable {
    /// The close code the connection ends with (RFC 6455 §7.1.5): ours, or the peer's (1005 when it gave none).
    public var code: WebSocketCloseCode

    public init(code: WebSocketCloseCode) { self.code = code }
}
