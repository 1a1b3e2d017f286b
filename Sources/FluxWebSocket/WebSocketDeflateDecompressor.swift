import CZlib
import NIOCore

/// Inflates permessage-deflate messages (RFC 7692 §7.2.2) on system zlib, frame by frame, with a limit on
/// the decompressed size so a small compressed message cannot expand without bound (RFC 7692 §8.1).
///
/// Feed each frame's payload to ``decompress(_:into:limit:)`` as it arrives, then call
/// ``finishMessage(into:limit:)`` after the final frame: it supplies the `00 00 ff ff` tail the sender removed.
///
/// Owns a zlib stream; not thread-safe, use from one connection at a time.
public final class WebSocketDeflateDecompressor {
    /// How to decompress.
    public struct Configuration: Hashable, Sendable {
        /// The peer's negotiated window, 8–15; 8 is used as 9 (zlib rejects raw 8; a larger window reads it).
        public var windowBits: Int
        /// The peer resets its context after each message, so ours may be reset too (RFC 7692 §7.1.1).
        public var noContextTakeover: Bool

        /// Creates a configuration.
        public init(windowBits: Int = 15, noContextTakeover: Bool = false) {
            self.windowBits = windowBits
            self.noContextTakeover = noContextTakeover
        }
    }

    private static let tail: [UInt8] = [0x00, 0x00, 0xFF, 0xFF]
    private static let chunkSize = 16 * 1024

    /// The configuration this decompressor was created with.
    public let configuration: Configuration
    /// zlib's state, made on the first compressed message; with no context takeover it is freed after each message
    /// (an idle connection holds no zlib memory, and inflate's state is cheap to make again).
    private var lazyStream: UnsafeMutablePointer<z_stream>?
    /// The peer ended the DEFLATE stream (BFINAL) inside this message; the rest of it is ignored.
    private var streamEnded = false

    /// Creates a decompressor.
    public init(configuration: Configuration) {
        self.configuration = configuration
    }

    deinit {
        release()
    }

    /// Whether zlib's state exists now.
    public var isAllocated: Bool { lazyStream != nil }

    private var stream: UnsafeMutablePointer<z_stream> {
        if let lazyStream { return lazyStream }
        let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        stream.initialize(to: z_stream())
        let windowBits = Int32(max(9, min(15, configuration.windowBits)))
        let result = fluxgate_inflateInit2(stream, -windowBits)
        precondition(result == Z_OK, "inflateInit2 failed with \(result)")
        lazyStream = stream
        return stream
    }

    private func release() {
        guard let lazyStream else { return }
        inflateEnd(lazyStream)
        lazyStream.deinitialize(count: 1)
        lazyStream.deallocate()
        self.lazyStream = nil
    }

    /// Inflates one frame's payload, appending to `output`, which may hold at most `limit` readable bytes.
    ///
    /// - Throws: ``WebSocketError/messageTooLarge`` (1009) past the limit, ``WebSocketError/compressionError``
    ///   (1002) for data that is not valid DEFLATE.
    public func decompress(_ input: ByteBuffer, into output: inout ByteBuffer, limit: Int) throws(WebSocketError) {
        guard input.readableBytes > 0 else { return }
        let result: Result<Void, WebSocketError> = input.withUnsafeReadableBytes { bytes in
            inflateAll(bytes, into: &output, limit: limit)
        }
        try result.get()
    }

    /// Ends a message: inflates the implicit `00 00 ff ff` tail, then resets the context if negotiated.
    public func finishMessage(into output: inout ByteBuffer, limit: Int) throws(WebSocketError) {
        defer {
            if configuration.noContextTakeover {
                release()
            } else if streamEnded {
                inflateReset(stream)
            }
            streamEnded = false
        }
        let result: Result<Void, WebSocketError> = Self.tail.withUnsafeBytes { bytes in
            inflateAll(bytes, into: &output, limit: limit)
        }
        try result.get()
    }

    /// Drops any partial message state (after a failed connection, or to reuse the object).
    public func reset() {
        release()
        streamEnded = false
    }

    private func inflateAll(_ bytes: UnsafeRawBufferPointer, into output: inout ByteBuffer, limit: Int) -> Result<Void, WebSocketError> {
        guard !streamEnded, let base = bytes.baseAddress else { return .success(()) }
        stream.pointee.next_in = UnsafeMutablePointer(mutating: base.assumingMemoryBound(to: Bytef.self))
        stream.pointee.avail_in = uInt(bytes.count)
        defer {
            stream.pointee.next_in = nil
            stream.pointee.next_out = nil
        }
        while true {
            let room = limit - output.readableBytes
            // Always offer at least one byte more than allowed, to detect going past the limit.
            let capacity = max(1, min(Self.chunkSize, room + 1))
            var status: Int32 = Z_OK
            output.writeWithUnsafeMutableBytes(minimumWritableBytes: capacity) { out in
                let usable = min(out.count, room + 1)
                stream.pointee.next_out = out.baseAddress!.assumingMemoryBound(to: Bytef.self)
                stream.pointee.avail_out = uInt(max(usable, 1))
                status = inflate(stream, Z_SYNC_FLUSH)
                return max(usable, 1) - Int(stream.pointee.avail_out)
            }
            if output.readableBytes > limit {
                return .failure(WebSocketError(.messageTooLarge, "decompressed message exceeds \(limit) bytes"))
            }
            switch status {
            case Z_STREAM_END:
                streamEnded = true
                return .success(())
            case Z_OK, Z_BUF_ERROR:
                // Done when all input is consumed and zlib did not fill the output (no pending output).
                if stream.pointee.avail_in == 0 && stream.pointee.avail_out > 0 { return .success(()) }
                if status == Z_BUF_ERROR && stream.pointee.avail_in == 0 { return .success(()) }
            default:
                let message = stream.pointee.msg.map { String(cString: $0) } ?? "zlib error \(status)"
                return .failure(WebSocketError(.compressionError, message))
            }
        }
    }
}

@available(*, unavailable)
extension WebSocketDeflateDecompressor: Sendable {}
