/// A WebSocket frame opcode (RFC 6455 §5.2, §11.8).
///
/// An open set: a struct with static members rather than an enum, so that a new opcode defined by a future
/// extension is not a source-breaking change. Only the low four bits are meaningful.
public struct WebSocketOpcode: Hashable, Sendable, CustomStringConvertible {
    /// The 4-bit opcode value (0x0–0xF).
    public let rawValue: UInt8

    /// Creates an opcode from its 4-bit wire value; `nil` if `rawValue` does not fit in four bits.
    public init?(rawValue: UInt8) {
        guard rawValue <= 0xF else { return nil }
        self.rawValue = rawValue
    }

    /// Creates an opcode from a value already known to fit in four bits.
    @inlinable
    init(uncheckedRawValue: UInt8) {
        self.rawValue = uncheckedRawValue
    }

    /// 0x0: a continuation frame of a fragmented message (RFC 6455 §5.4).
    public static let continuation = WebSocketOpcode(uncheckedRawValue: 0x0)
    /// 0x1: the first frame of a text message, UTF-8 encoded (RFC 6455 §5.6).
    public static let text = WebSocketOpcode(uncheckedRawValue: 0x1)
    /// 0x2: the first frame of a binary message (RFC 6455 §5.6).
    public static let binary = WebSocketOpcode(uncheckedRawValue: 0x2)
    /// 0x8: a Close control frame (RFC 6455 §5.5.1).
    public static let connectionClose = WebSocketOpcode(uncheckedRawValue: 0x8)
    /// 0x9: a Ping control frame (RFC 6455 §5.5.2).
    public static let ping = WebSocketOpcode(uncheckedRawValue: 0x9)
    /// 0xA: a Pong control frame (RFC 6455 §5.5.3).
    public static let pong = WebSocketOpcode(uncheckedRawValue: 0xA)

    /// Whether this is a control opcode: the most significant opcode bit is set (RFC 6455 §5.5).
    @inlinable
    public var isControl: Bool { rawValue & 0x8 != 0 }

    /// Whether this opcode is reserved for future use (0x3–0x7 and 0xB–0xF, RFC 6455 §5.2).
    /// Receiving one without a negotiated extension that defines it fails the connection.
    @inlinable
    public var isReserved: Bool {
        switch rawValue {
        case 0x0, 0x1, 0x2, 0x8, 0x9, 0xA: false
        default: true
        }
    }

    public var description: String {
        switch self {
        case .continuation: "continuation"
        case .text: "text"
        case .binary: "binary"
        case .connectionClose: "close"
        case .ping: "ping"
        case .pong: "pong"
        default: "reserved(0x\(String(rawValue, radix: 16)))"
        }
    }
}
