import NIOCore

/// A `ByteToMessageDecoder` turning bytes into ``WebSocketFrame``s with ``WebSocketFrameParser``.
///
/// Wrap it in `ByteToMessageHandler`. A protocol error is thrown as a ``WebSocketError``, which the handler
/// fires through `errorCaught` for ``WebSocketConnectionHandler`` to turn into a Close frame (RFC 6455 §7.1.7);
/// no further bytes are decoded after that.
public struct WebSocketFrameDecoder: ByteToMessageDecoder {
    public typealias InboundOut = WebSocketFrame

    private var parser: WebSocketFrameParser

    /// Creates a decoder; allow RSV1 when permessage-deflate was negotiated.
    public init(configuration: WebSocketFrameParser.Configuration = .init()) {
        parser = WebSocketFrameParser(configuration: configuration)
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        switch try parser.parseStep(&buffer) {
        case .frame(let frame):
            context.fireChannelRead(Self.wrapInboundOut(frame))
            return .continue
        case .needMoreData:
            return .needMoreData
        }
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        // Frames complete in the buffer are still delivered; a truncated last frame is dropped with the connection.
        try decode(context: context, buffer: &buffer)
    }
}
