import NIOCore

/// A server-to-client message encoded once, to be written as the same bytes to many connections
/// (the hub's fan-out: one JSON event, one frame, compressed once per deflate setting).
///
/// Holds the complete frame bytes uncompressed and, when given a compressor without context takeover,
/// compressed with RSV1 set (RFC 7692 §6). ``bytes(for:)`` picks what a connection may receive: the compressed
/// frame only if that connection negotiated `server_no_context_takeover` and a server window at least as large
/// as the compressor's (RFC 7692 §7.1.1.1, §7.1.2.1); otherwise the plain frame, which is always allowed since
/// compression is per message.
public struct WebSocketPreparedMessage: Sendable {
    /// The whole frame, uncompressed and unmasked (server role).
    public let plainFrame: ByteBuffer
    /// The whole frame, deflated, RSV1 set; `nil` when no compressor was given or compression did not help.
    public let compressedFrame: ByteBuffer?
    /// The window the compressed frame was produced with (after zlib's 8 → 9 adjustment).
    public let compressedWindowBits: Int

    /// Encodes `data` as one final frame with `opcode` (text or binary).
    ///
    /// - Parameter compressor: a compressor with `noContextTakeover`; with context takeover the output would
    ///   depend on earlier messages and could not be shared, so it is ignored (precondition in debug builds).
    public init(
        opcode: WebSocketOpcode,
        data: ByteBuffer,
        compressor: WebSocketDeflateCompressor? = nil,
        allocator: ByteBufferAllocator = ByteBufferAllocator()
    ) {
        plainFrame = WebSocketFrameEncoder.encode(WebSocketFrame(opcode: opcode, data: data), allocator: allocator)
        if let compressor {
            assert(compressor.configuration.noContextTakeover, "a shared compressor must reset its context after each message")
            let compressed = compressor.compress(data, allocator: allocator)
            if compressor.configuration.noContextTakeover, compressed.readableBytes < data.readableBytes {
                compressedFrame = WebSocketFrameEncoder.encode(WebSocketFrame(rsv1: true, opcode: opcode, data: compressed), allocator: allocator)
            } else {
                compressedFrame = nil
            }
            compressedWindowBits = max(9, compressor.configuration.windowBits)
        } else {
            compressedFrame = nil
            compressedWindowBits = 15
        }
    }

    /// The frame bytes to write to a connection that negotiated `deflate` (or nothing).
    public func bytes(for deflate: WebSocketDeflateParameters?) -> ByteBuffer {
        if let compressedFrame, let deflate, deflate.serverNoContextTakeover,
            (deflate.serverMaxWindowBits ?? 15) >= compressedWindowBits
        {
            return compressedFrame
        }
        return plainFrame
    }
}
