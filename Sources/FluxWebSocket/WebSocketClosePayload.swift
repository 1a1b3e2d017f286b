import NIOCore

/// The body of a Close frame: an optional status code and a UTF-8 reason (RFC 6455 §5.5.1, §7.4).
public struct WebSocketClosePayload: Hashable, Sendable {
    /// The most reason bytes a Close frame can carry: 125 payload bytes minus the 2-byte code (RFC 6455 §5.5).
    public static let maxReasonBytes = 123

    /// The status code; `nil` when the frame had an empty body (reported locally as 1005, RFC 6455 §7.1.5).
    public var code: WebSocketCloseCode?
    /// The reason, at most ``maxReasonBytes`` bytes of UTF-8 on the wire; empty without a code.
    public var reason: String

    /// Creates a payload. A reason longer than ``maxReasonBytes`` is cut at a character boundary when written.
    public init(code: WebSocketCloseCode?, reason: String = "") {
        self.code = code
        self.reason = reason
    }

    /// Parses and validates a received Close frame's body (RFC 6455 §5.5.1, §7.4).
    ///
    /// - Throws: ``WebSocketError/invalidClosePayload`` for a 1-byte body and
    ///   ``WebSocketError/invalidCloseCode`` for a code not allowed on the wire (both close with 1002);
    ///   ``WebSocketError/invalidUTF8`` when the reason is not UTF-8 (closes with 1007, RFC 6455 §8.1).
    public init(parsing payload: ByteBuffer) throws(WebSocketError) {
        var payload = payload
        switch payload.readableBytes {
        case 0:
            self.init(code: nil)
            return
        case 1:
            throw WebSocketError.invalidClosePayload
        default:
            break
        }
        let code = WebSocketCloseCode(rawValue: payload.readInteger(as: UInt16.self)!)
        guard code.isValidOnWire else { throw WebSocketError(.invalidCloseCode, "code \(code.rawValue)") }
        var validator = WebSocketUTF8Validator()
        guard validator.validate(payload), validator.finish() else {
            throw WebSocketError(.invalidUTF8, "in the close reason")
        }
        self.init(code: code, reason: payload.readString(length: payload.readableBytes)!)
    }

    /// The number of bytes ``write(into:)`` produces.
    public var encodedSize: Int {
        code == nil ? 0 : 2 + min(reason.utf8.count, Self.maxReasonBytes)
    }

    /// Writes the body: nothing without a code, else the code and the reason cut to ``maxReasonBytes``
    /// at a Unicode scalar boundary.
    public func write(into buffer: inout ByteBuffer) {
        guard let code else { return }
        buffer.writeInteger(code.rawValue)
        let utf8 = reason.utf8
        if utf8.count <= Self.maxReasonBytes {
            buffer.writeString(reason)
            return
        }
        var end = utf8.index(utf8.startIndex, offsetBy: Self.maxReasonBytes)
        // Back up over continuation bytes (10xxxxxx) so no scalar is split.
        while end > utf8.startIndex && utf8[end] & 0xC0 == 0x80 {
            end = utf8.index(before: end)
        }
        buffer.writeBytes(utf8[utf8.startIndex..<end])
    }

    /// A Close frame carrying this payload (unmasked; the client-role encoder masks it).
    public func frame(allocator: ByteBufferAllocator = ByteBufferAllocator()) -> WebSocketFrame {
        var data = allocator.buffer(capacity: encodedSize)
        write(into: &data)
        return WebSocketFrame(opcode: .connectionClose, data: data)
    }
}
