import NIOCore

/// Writes ``WebSocketFrame``s as bytes (RFC 6455 §5.2), masking them with a fresh random key in the client
/// role (RFC 6455 §5.3).
///
/// Unmasked payloads larger than a small threshold are not copied: the header goes out in its own buffer
/// followed by the payload buffer itself. Smaller frames are written as one buffer.
public final class WebSocketFrameEncoderHandler: ChannelOutboundHandler {
    public typealias OutboundIn = WebSocketFrame
    public typealias OutboundOut = ByteBuffer

    /// Payloads up to this size are copied next to the header (one write); larger ones are written as is.
    static let copyThreshold = 1024

    private let maskFrames: Bool

    /// Creates an encoder; `maskFrames` must be `true` in the client role and `false` in the server role.
    public init(maskFrames: Bool) {
        self.maskFrames = maskFrames
    }

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        var frame = Self.unwrapOutboundIn(data)
        if maskFrames && frame.maskKey == nil {
            frame.maskKey = .random()
        } else if !maskFrames {
            frame.maskKey = nil
        }
        let length = frame.data.readableBytes
        if frame.maskKey != nil || length <= Self.copyThreshold {
            let headerSize = WebSocketFrameEncoder.headerSize(payloadLength: length, masked: frame.maskKey != nil)
            var buffer = context.channel.allocator.buffer(capacity: headerSize + length)
            WebSocketFrameEncoder.encode(frame, into: &buffer)
            context.write(Self.wrapOutboundOut(buffer), promise: promise)
        } else {
            var header = context.channel.allocator.buffer(capacity: WebSocketFrameEncoder.headerSize(payloadLength: length, masked: false))
            WebSocketFrameEncoder.writeHeader(of: frame, into: &header)
            context.write(Self.wrapOutboundOut(header), promise: nil)
            context.write(Self.wrapOutboundOut(frame.data), promise: promise)
        }
    }
}

@available(*, unavailable)
extension WebSocketFrameEncoderHandler: Sendable {}
