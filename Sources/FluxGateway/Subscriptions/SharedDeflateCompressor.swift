import FluxWebSocket
import NIOCore
import Synchronization

/// One permessage-deflate compressor without context takeover, shared by the hub: a batch is compressed
/// once and the same frame goes to every subscriber that negotiated `server_no_context_takeover`
/// (RFC 7692 §7.1.1.1).
final class SharedDeflateCompressor: Sendable {
    private let compressor = Mutex(WebSocketDeflateCompressor(configuration: .init(windowBits: 15, noContextTakeover: true)))

    /// The message as one final text frame, plain and compressed.
    func prepare(text: ByteBuffer) -> WebSocketPreparedMessage {
        compressor.withLock { compressor in
            WebSocketPreparedMessage(opcode: .text, data: text, compressor: compressor)
        }
    }

    /// The message as one final text frame, uncompressed only.
    static func preparePlain(text: ByteBuffer) -> WebSocketPreparedMessage {
        WebSocketPreparedMessage(opcode: .text, data: text)
    }
}
