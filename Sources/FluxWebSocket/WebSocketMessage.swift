import NIOCore

/// A complete data message, reassembled from its frames and decompressed if needed (RFC 6455 §5.6, §6.2).
public struct WebSocketMessage: Hashable, Sendable {
    // `data` comes first: a ByteBuffer takes 23 bytes, so the opcode fits in the 24th and a message in the three
    // words an existential (`NIOAny`) holds inline: passing it between channel handlers allocates nothing.

    /// The application data.
    public var data: ByteBuffer
    /// ``WebSocketOpcode/text`` (``data`` is valid UTF-8) or ``WebSocketOpcode/binary``.
    public var opcode: WebSocketOpcode

    /// Creates a message.
    public init(opcode: WebSocketOpcode, data: ByteBuffer) {
        self.opcode = opcode
        self.data = data
    }

    /// Whether this is a text message.
    public var isText: Bool { opcode == .text }
}
