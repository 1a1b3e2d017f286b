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

    /// The most bytes the header of an unmasked (server) frame takes: reserve them in front of a payload written in
    /// place, then call ``frame(_:reservedHeaderBytes:opcode:)``.
    public static let maxUnmaskedHeaderSize = 10

    /// Writes the header of `frame` (bits, opcode, length of `frame.data`, masking key) to `buffer`.
    ///
    /// Use this with a separate write of the payload to avoid copying unmasked payloads.
    public static func writeHeader(of frame: WebSocketFrame, into buffer: inout ByteBuffer) {
        var first = frame.opcode.rawValue
        if frame.fin { first |= 0x80 }
        if frame.rsv1 { first |= 0x40 }
        if frame.rsv2 { first |= 0x20 }
        if frame.rsv3 { first |= 0x10 }
        let size = headerSize(payloadLength: frame.data.readableBytes, masked: frame.maskKey != nil)
        buffer.reserveCapacity(minimumWritableBytes: size)
        let start = buffer.writerIndex
        buffer.moveWriterIndex(forwardBy: size)
        setHeader(first: first, length: frame.data.readableBytes, maskKey: frame.maskKey, in: &buffer, at: start)
    }

    /// Makes one final unmasked frame with `opcode` of a payload written in place, without copying it: `buffer` holds
    /// `reservedHeaderBytes` (at least ``maxUnmaskedHeaderSize``) unused bytes at its reader index, then the payload.
    /// The header goes just in front of the payload and the reader index moves to it.
    public static func frame(_ buffer: inout ByteBuffer, reservedHeaderBytes: Int, opcode: WebSocketOpcode) {
        precondition(reservedHeaderBytes >= maxUnmaskedHeaderSize && buffer.readableBytes >= reservedHeaderBytes)
        let length = buffer.readableBytes - reservedHeaderBytes
        let start = buffer.readerIndex + reservedHeaderBytes - headerSize(payloadLength: length, masked: false)
        buffer.moveReaderIndex(to: start)
        setHeader(first: 0x80 | opcode.rawValue, length: length, maskKey: nil, in: &buffer, at: start)
    }

    /// Sets the header bytes (minimal length form, RFC 6455 §5.2) at `index`, where room for them was made.
    private static func setHeader(first: UInt8, length: Int, maskKey: WebSocketMaskingKey?, in buffer: inout ByteBuffer, at index: Int) {
        let maskBit: UInt8 = maskKey == nil ? 0 : 0x80
        buffer.setInteger(first, at: index)
        var next = index + 2
        if length <= 125 {
            buffer.setInteger(maskBit | UInt8(length), at: index + 1)
        } else if length <= Int(UInt16.max) {
            buffer.setInteger(maskBit | 126, at: index + 1)
            next += buffer.setInteger(UInt16(length), at: next)
        } else {
            buffer.setInteger(maskBit | 127, at: index + 1)
            next += buffer.setInteger(UInt64(length), at: next)
        }
        if let maskKey {
            buffer.setInteger(maskKey.rawValue, at: next)
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
