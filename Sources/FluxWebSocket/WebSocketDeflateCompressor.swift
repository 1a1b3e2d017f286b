import CZlib
import NIOCore

/// Compresses whole messages for permessage-deflate (RFC 7692 §7.2.1) on system zlib.
///
/// Each message is deflated as raw DEFLATE with a sync flush, and the trailing `00 00 ff ff` is removed.
/// Without context takeover the LZ77 window is reset after every message (RFC 7692 §7.1.1), which makes the
/// output depend only on the message: compress once, send to many connections (``WebSocketPreparedMessage``).
///
/// Owns a zlib stream; not thread-safe, use from one connection (or one fan-out task) at a time.
public final class WebSocketDeflateCompressor {
    /// How to compress.
    public struct Configuration: Hashable, Sendable {
        /// The negotiated window, 8–15. zlib cannot do raw deflate with 8, so 8 is used as 9: zlib's largest
        /// match distance with a 9-bit window is 250 bytes, within what an 8-bit peer window accepts.
        public var windowBits: Int
        /// Reset the context after each message (RFC 7692 §7.1.1).
        public var noContextTakeover: Bool
        /// zlib compression level, 0–9 (default 6 via -1 in zlib; here 6 explicitly).
        public var level: Int
        /// zlib memory level, 1–9: lower uses less memory per connection (RFC 7692 §8 discusses the trade-off).
        public var memoryLevel: Int

        /// Creates a configuration.
        public init(windowBits: Int = 15, noContextTakeover: Bool = false, level: Int = 6, memoryLevel: Int = 8) {
            self.windowBits = windowBits
            self.noContextTakeover = noContextTakeover
            self.level = level
            self.memoryLevel = memoryLevel
        }
    }

    /// The configuration this compressor was created with.
    public let configuration: Configuration
    /// zlib's state (≈ 256 KiB at 15 window bits and memory level 8), made on the first message: a connection that
    /// negotiated deflate but sends nothing costs no zlib memory.
    private var lazyStream: UnsafeMutablePointer<z_stream>?

    /// Creates a compressor.
    public init(configuration: Configuration) {
        self.configuration = configuration
        precondition((0...9).contains(configuration.level) && (1...9).contains(configuration.memoryLevel), "invalid deflate level or memory level")
    }

    deinit {
        if let lazyStream {
            deflateEnd(lazyStream)
            lazyStream.deinitialize(count: 1)
            lazyStream.deallocate()
        }
    }

    /// Whether zlib's state exists (it is made on the first message).
    public var isAllocated: Bool { lazyStream != nil }

    private var stream: UnsafeMutablePointer<z_stream> {
        if let lazyStream { return lazyStream }
        let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        stream.initialize(to: z_stream())
        let windowBits = Int32(max(9, min(15, configuration.windowBits)))
        let result = fluxgate_deflateInit2(
            stream, Int32(configuration.level), Z_DEFLATED, -windowBits, Int32(configuration.memoryLevel), Z_DEFAULT_STRATEGY)
        precondition(result == Z_OK, "deflateInit2 failed with \(result): invalid level or memory level")
        lazyStream = stream
        return stream
    }

    /// Appends the compressed form of one whole message to `output` (RFC 7692 §7.2.1), without the tail.
    public func compress(_ message: ByteBuffer, into output: inout ByteBuffer) {
        let start = output.writerIndex
        var input = message
        if input.readableBytes == 0 {
            deflateChunk(nil, count: 0, into: &output)
        } else {
            input.withUnsafeReadableBytes { bytes in
                deflateChunk(bytes.baseAddress!, count: bytes.count, into: &output)
            }
        }
        // A sync flush ends with an empty stored block, 00 00 ff ff, which RFC 7692 §7.2.1 removes.
        let produced = output.writerIndex - start
        precondition(
            produced >= 4 && output.getBytes(at: output.writerIndex - 4, length: 4) == [0x00, 0x00, 0xFF, 0xFF],
            "zlib sync flush did not end with 00 00 ff ff")
        output.moveWriterIndex(to: output.writerIndex - 4)
        if configuration.noContextTakeover {
            deflateReset(stream)
        }
        input.moveReaderIndex(forwardBy: input.readableBytes)
    }

    /// The compressed form of one whole message in a new buffer.
    public func compress(_ message: ByteBuffer, allocator: ByteBufferAllocator = ByteBufferAllocator()) -> ByteBuffer {
        var output = allocator.buffer(capacity: Int(deflateBound(stream, UInt(message.readableBytes))) + 16)
        compress(message, into: &output)
        return output
    }

    private func deflateChunk(_ base: UnsafeRawPointer?, count: Int, into output: inout ByteBuffer) {
        stream.pointee.next_in = base.map { UnsafeMutablePointer(mutating: $0.assumingMemoryBound(to: Bytef.self)) }
        stream.pointee.avail_in = uInt(count)
        repeat {
            let bound = Int(deflateBound(stream, UInt(stream.pointee.avail_in))) + 16
            output.writeWithUnsafeMutableBytes(minimumWritableBytes: bound) { out in
                stream.pointee.next_out = out.baseAddress!.assumingMemoryBound(to: Bytef.self)
                stream.pointee.avail_out = uInt(out.count)
                let result = deflate(stream, Z_SYNC_FLUSH)
                precondition(result == Z_OK || result == Z_BUF_ERROR, "deflate failed with \(result)")
                return out.count - Int(stream.pointee.avail_out)
            }
            // A flush is complete once zlib leaves output space unused (zlib manual, deflate()).
        } while stream.pointee.avail_in > 0 || stream.pointee.avail_out == 0
        stream.pointee.next_in = nil
        stream.pointee.next_out = nil
    }
}

@available(*, unavailable)
extension WebSocketDeflateCompressor: Sendable {}
