import FluxWebSocket
import FuzzSupport
import NIOCore

// Feeds arbitrary DEFLATE data to `WebSocketDeflateDecompressor` with a bounded message size, and round-trips
// plaintext through `WebSocketDeflateCompressor`.
//
// Input layout: [config] [limit lo] [limit hi] [split count n] [n split lengths] [data...].
// config bits 0–2: window bits 8–15; bit 3: no context takeover; bit 4: round-trip mode; bits 5–7: frames per
// message (1–8).
//
// Checks, raw mode (data is compressed input, cut into frames and messages by the split lengths):
// - a successful message never holds more than the limit, a failed one at most one byte more;
// - the output buffer's capacity stays proportional to the limit, never to what the data would expand to
//   (a decompression bomb is refused before it is allocated, RFC 7692 §8.1);
// - errors are only `messageTooLarge` or `compressionError`, and the decompressor keeps working after reset().
// Round-trip mode (data is plaintext, cut into messages): compress then inflate gives the same bytes, frame
// boundaries anywhere; with a limit below the message size inflating fails with `messageTooLarge`.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let config = input.byte()
    let windowBits = 8 + Int(config & 7)
    let noContextTakeover = config & 8 != 0
    let roundTrip = config & 16 != 0
    let framesPerMessage = 1 + Int(config >> 5)
    let limit = 1 + Int(input.uint16()) * 16
    let splits = input.take(Int(input.byte() & 15))
    let payload = input.rest()

    let decompressor = WebSocketDeflateDecompressor(configuration: .init(windowBits: windowBits, noContextTakeover: noContextTakeover))
    if roundTrip {
        let compressor = WebSocketDeflateCompressor(configuration: .init(windowBits: windowBits, noContextTakeover: noContextTakeover))
        for message in chunks(of: payload, lengths: splits.map { $0 &* 7 }) {
            let compressed = compressor.compress(ByteBuffer(bytes: message))
            let frames = chunks(of: Array(compressed.readableBytesView), lengths: splits)
            var output = ByteBuffer()
            let bigEnough = max(limit, message.count)
            do {
                for frame in frames {
                    try decompressor.decompress(ByteBuffer(bytes: frame), into: &output, limit: bigEnough)
                }
                try decompressor.finishMessage(into: &output, limit: bigEnough)
            } catch {
                fuzzCheck(false, "round trip of \(message.count) bytes (window \(windowBits)) failed: \(error)")
            }
            fuzzCheck(output.readableBytesView.elementsEqual(message), "round trip of \(message.count) bytes changed the data")
        }
        // A limit one byte short of a message refuses it.
        if payload.count > 1 {
            let fresh = WebSocketDeflateDecompressor(configuration: .init(windowBits: windowBits))
            let tight = WebSocketDeflateCompressor(configuration: .init(windowBits: windowBits)).compress(ByteBuffer(bytes: payload))
            var output = ByteBuffer()
            do {
                try fresh.decompress(tight, into: &output, limit: payload.count - 1)
                try fresh.finishMessage(into: &output, limit: payload.count - 1)
                fuzzCheck(false, "\(payload.count) bytes inflated under a limit of \(payload.count - 1)")
            } catch WebSocketError.messageTooLarge {
            } catch {
                fuzzCheck(false, "unexpected error \(error)")
            }
        }
        return 0
    }

    let frames = chunks(of: payload, lengths: splits)
    var index = 0
    while index < frames.count {
        let message = frames[index..<min(frames.count, index + framesPerMessage)]
        index += framesPerMessage
        var output = ByteBuffer()
        do {
            for frame in message {
                try decompressor.decompress(ByteBuffer(bytes: frame), into: &output, limit: limit)
                fuzzCheck(output.readableBytes <= limit, "frame left \(output.readableBytes) bytes, limit \(limit)")
            }
            try decompressor.finishMessage(into: &output, limit: limit)
            fuzzCheck(output.readableBytes <= limit, "message of \(output.readableBytes) bytes, limit \(limit)")
        } catch WebSocketError.messageTooLarge {
            fuzzCheck(output.readableBytes <= limit + 1, "refused only after \(output.readableBytes) bytes, limit \(limit)")
            decompressor.reset()
        } catch WebSocketError.compressionError {
            decompressor.reset()
        } catch {
            fuzzCheck(false, "unexpected error \(error)")
        }
        fuzzCheck(output.capacity <= 2 * (limit + 32 * 1024), "output grew to \(output.capacity) bytes for a limit of \(limit)")
    }
    return 0
}
