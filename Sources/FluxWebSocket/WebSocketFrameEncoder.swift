import NIOCore

/// Writes WebSocket frames to bytes (RFC 6455 §5.2), using the minimal length encoding.
///
/// Stateless; a frame with a ``WebSocketFrame/maskKey`` is masked on the wire (RFC 6455 §5.3) while the
/// frame's own ``WebSocketFrame/data`` is left untouched.
public enum WebSocketFrameEncoder {
    /// The size of the header for a payload of `payloadLength` bytes, masked or not (2 to 14 bytes).
    @inlinable
    public static func headerSize(payloadLength: Int, masked: Bool) -> Int {
        let lengthBytes = payloadLength <= 125 ? 0 : payloadLength <= Int(UInt16.max) ? 2 : 8
        return 2 + lengthBytes + (masked ? 4 : 0)
    }

    /// Writes the header of `frame` (bits, opcode, length of `frame.data`, masking key) to `buffer`.
    ///
    /// Use this with a separate write of the payload to avoid copying unmasked payloads.
    public static func writeHeader(of frame: WebSocketFrame, into buffer: inout ByteBuffer) {
        var first = frame.opcode.rawValue
        if frame.fin { first |= 0x80 }
        if frame.rsv1 { first |= 0x40 }
        if frame.rsv2 { first |= 0x20 }
        if frame.rsv3 { first |= 0x10 }
        let maskBit: UInt8 = frame.maskKey == nil ? 0 : 0x80
        let length = frame.data.readableBytes
        if length <= 125 {
            buffer.writeMultipleIntegers(first, maskBit | UInt8(length))
        } else if length <= Int(UInt16.max) {
            buffer.writeMultipleIntegers(first, maskBit | 126, UInt16(length))
        } else {
            buffer.writeMultipleIntegers(first, maskBit | 127, UInt64(length))
        }
        if let key = frame.maskKey {
            buffer.writeInteger(key.rawValue)
        }
    }

    /// Appends the whole frame (header and payload, masked if the frame has a key) to `buffer`.
    public static func encode(_ frame: WebSocketFrame, into buffer: inout ByteBuffer) {
        let length = frame.data.readableBytes
        buffer.reserveCapacity(minimumWritableBytes: headerSize(payloadLength: length, masked: frame.maskKey != nil) + length)
        writeHeader(of: frame, into: &buffer)
        let payloadStart = buffer.writerIndex
        buffer.writeImmutableBuffer(frame.data)
        if let key = frame.maskKey, length > 0 {
            maskInPlace(&buffer, from: payloadStart, length: length, key: key)
        }
    }

    /// The frame's bytes in a new buffer: encode once, then write the same bytes to many connections.
    public static func encode(_ frame: WebSocketFrame, allocator: ByteBufferAllocator) -> ByteBuffer {
        let length = frame.data.readableBytes
        var buffer = allocator.buffer(capacity: headerSize(payloadLength: length, masked: frame.maskKey != nil) + length)
        encode(frame, into: &buffer)
        return buffer
    }

    private static func maskInPlace(_ buffer: inout ByteBuffer, from index: Int, length: Int, key: WebSocketMaskingKey) {
        let relative = index - buffer.readerIndex
        buffer.withUnsafeMutableReadableBytes { bytes in
            key.apply(to: UnsafeMutableRawBufferPointer(rebasing: bytes[relative..<(relative + length)]))
        }
    }
}
