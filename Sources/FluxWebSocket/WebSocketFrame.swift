import NIOCore

/// One WebSocket frame (RFC 6455 §5.2): header bits, opcode, optional masking key and payload.
///
/// Frames produced by ``WebSocketFrameParser`` carry their payload already unmasked; ``maskKey`` records the
/// key the peer used (so a server can tell whether the client masked). When encoding, a non-nil ``maskKey``
/// makes ``WebSocketFrameEncoder`` mask the payload on the wire; ``data`` itself stays unmasked.
public struct WebSocketFrame: Hashable, Sendable {
    /// FIN: this is the final fragment of a message (RFC 6455 §5.2).
    public var fin: Bool
    /// RSV1; with permessage-deflate, set on the first frame of a compressed message (RFC 7692 §6).
    public var rsv1: Bool
    /// RSV2; no extension we support defines it (RFC 6455 §5.2).
    public var rsv2: Bool
    /// RSV3; no extension we support defines it (RFC 6455 §5.2).
    public var rsv3: Bool
    /// The frame's opcode (RFC 6455 §5.2).
    public var opcode: WebSocketOpcode
    /// The masking key: present on every client-to-server frame, absent on server-to-client ones (RFC 6455 §5.3).
    public var maskKey: WebSocketMaskingKey?
    /// The payload ("application data" plus any extension data), unmasked.
    public var data: ByteBuffer

    /// Creates a frame.
    public init(
        fin: Bool = true,
        rsv1: Bool = false,
        rsv2: Bool = false,
        rsv3: Bool = false,
        opcode: WebSocketOpcode,
        maskKey: WebSocketMaskingKey? = nil,
        data: ByteBuffer
    ) {
        self.fin = fin
        self.rsv1 = rsv1
        self.rsv2 = rsv2
        self.rsv3 = rsv3
        self.opcode = opcode
        self.maskKey = maskKey
        self.data = data
    }
}
