import CZlib
import NIOCore

/// The scripted peer's own permessage-deflate (RFC 7692 §7.2) on system zlib, independent of
/// `WebSocketDeflateCompressor`/`Decompressor`: it compresses what the peer sends and inflates what the
/// testee sends, with the windows and context takeover the handshake agreed, so a testee that uses a larger
/// window or keeps a context it promised to drop fails to inflate here.
final class ConformanceDeflater {
    private let stream: UnsafeMutablePointer<z_stream>
    private let noContextTakeover: Bool

    /// `windowBits` 8–15; zlib's raw deflate cannot use 8, and 9 is safe for an 8-bit peer (its largest
    /// match distance is 250 bytes).
    init(windowBits: Int, noContextTakeover: Bool) {
        self.noContextTakeover = noContextTakeover
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        let result = fluxgate_deflateInit2(stream, 6, Z_DEFLATED, -Int32(max(9, windowBits)), 8, Z_DEFAULT_STRATEGY)
        precondition(result == Z_OK)
    }

    deinit {
        deflateEnd(stream)
        stream.deallocate()
    }

    /// One message, sync-flushed, without the trailing `00 00 ff ff` (RFC 7692 §7.2.1).
    func compress(_ message: ByteBuffer) -> ByteBuffer {
        var input = Array(message.readableBytesView)
        var output = [UInt8](repeating: 0, count: Int(deflateBound(stream, UInt(input.count))) + 64)
        var produced = 0
        input.withUnsafeMutableBufferPointer { inputBytes in
            stream.pointee.next_in = inputBytes.baseAddress
            stream.pointee.avail_in = uInt(inputBytes.count)
            repeat {
                if output.count - produced < 64 { output.append(contentsOf: [UInt8](repeating: 0, count: output.count)) }
                output.withUnsafeMutableBufferPointer { out in
                    stream.pointee.next_out = out.baseAddress! + produced
                    stream.pointee.avail_out = uInt(out.count - produced)
                    let result = deflate(stream, Z_SYNC_FLUSH)
                    precondition(result == Z_OK || result == Z_BUF_ERROR)
                    produced = out.count - Int(stream.pointee.avail_out)
                }
            } while stream.pointee.avail_in > 0 || stream.pointee.avail_out == 0
        }
        stream.pointee.next_in = nil
        stream.pointee.next_out = nil
        precondition(Array(output[(produced - 4)..<produced]) == [0x00, 0x00, 0xFF, 0xFF])
        if noContextTakeover { deflateReset(stream) }
        return ByteBuffer(bytes: Array(output[..<(produced - 4)]))
    }
}

/// Inflates the testee's compressed messages (RFC 7692 §7.2.2).
final class ConformanceInflater {
    struct Failed: Error, CustomStringConvertible {
        var description: String
    }

    private let stream: UnsafeMutablePointer<z_stream>
    private let noContextTakeover: Bool

    /// `windowBits` is the testee's agreed window (8–15): distances beyond it fail to inflate.
    init(windowBits: Int, noContextTakeover: Bool) {
        self.noContextTakeover = noContextTakeover
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        let result = fluxgate_inflateInit2(stream, -Int32(windowBits))
        precondition(result == Z_OK)
    }

    deinit {
        inflateEnd(stream)
        stream.deallocate()
    }

    /// One whole message (all fragments' payloads concatenated), with the tail added back.
    func decompress(_ message: ByteBuffer) throws -> ByteBuffer {
        var input = Array(message.readableBytesView) + [0x00, 0x00, 0xFF, 0xFF]
        var output = [UInt8](repeating: 0, count: max(1024, input.count * 4))
        var produced = 0
        var failure: String?
        input.withUnsafeMutableBufferPointer { inputBytes in
            stream.pointee.next_in = inputBytes.baseAddress
            stream.pointee.avail_in = uInt(inputBytes.count)
            while failure == nil {
                if output.count - produced < 1024 { output.append(contentsOf: [UInt8](repeating: 0, count: output.count)) }
                output.withUnsafeMutableBufferPointer { out in
                    stream.pointee.next_out = out.baseAddress! + produced
                    stream.pointee.avail_out = uInt(out.count - produced)
                    let result = inflate(stream, Z_SYNC_FLUSH)
                    produced = out.count - Int(stream.pointee.avail_out)
                    if result != Z_OK && result != Z_BUF_ERROR && result != Z_STREAM_END {
                        failure = stream.pointee.msg.map { String(cString: $0) } ?? "zlib error \(result)"
                    }
                }
                if stream.pointee.avail_in == 0 && stream.pointee.avail_out > 0 { break }
            }
        }
        stream.pointee.next_in = nil
        stream.pointee.next_out = nil
        if let failure { throw Failed(description: "cannot inflate the testee's message: \(failure)") }
        if noContextTakeover { inflateReset(stream) }
        return ByteBuffer(bytes: Array(output[..<produced]))
    }
}

@available(*, unavailable)
extension ConformanceDeflater: Sendable {}

@available(*, unavailable)
extension ConformanceInflater: Sendable {}
