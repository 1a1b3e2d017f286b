/// An error that fails a WebSocket connection, carrying the close code to send (RFC 6455 §7.1.7, §7.4).
///
/// A struct wrapping a private code so new cases are not breaking; match with the static members:
/// `catch WebSocketError.controlFrameTooLarge`.
public struct WebSocketError: Error, Hashable, Sendable, CustomStringConvertible {
    enum Code: Hashable, Sendable {
        case reservedOpcode
        case reservedBitsNotNegotiated
        case fragmentedControlFrame
        case controlFrameTooLarge
        case nonMinimalLength
        case lengthTopBitSet
        case frameTooLarge
        case messageTooLarge
        case unmaskedClientFrame
        case maskedServerFrame
        case unexpectedContinuation
        case dataFrameDuringFragmentedMessage
        case invalidUTF8
        case invalidClosePayload
        case invalidCloseCode
        case compressionError
    }

    let code: Code
    /// Additional human-readable detail (never secret data).
    public let detail: String

    init(_ code: Code, _ detail: String = "") {
        self.code = code
        self.detail = detail
    }

    /// A frame used an opcode reserved for future use (RFC 6455 §5.2).
    public static let reservedOpcode = WebSocketError(.reservedOpcode)
    /// A frame set RSV1, RSV2 or RSV3 though no extension giving it a meaning was negotiated (RFC 6455 §5.2).
    public static let reservedBitsNotNegotiated = WebSocketError(.reservedBitsNotNegotiated)
    /// A control frame had FIN clear; control frames cannot be fragmented (RFC 6455 §5.5).
    public static let fragmentedControlFrame = WebSocketError(.fragmentedControlFrame)
    /// A control frame carried more than 125 bytes of payload (RFC 6455 §5.5).
    public static let controlFrameTooLarge = WebSocketError(.controlFrameTooLarge)
    /// A payload length used a longer encoding than needed (RFC 6455 §5.2: "the minimal number of bytes").
    public static let nonMinimalLength = WebSocketError(.nonMinimalLength)
    /// A 64-bit payload length had its most significant bit set (RFC 6455 §5.2).
    public static let lengthTopBitSet = WebSocketError(.lengthTopBitSet)
    /// A frame's payload exceeded the configured maximum frame size (RFC 6455 §10.4).
    public static let frameTooLarge = WebSocketError(.frameTooLarge)
    /// A message (all its fragments, after decompression) exceeded the configured maximum size (RFC 6455 §10.4).
    public static let messageTooLarge = WebSocketError(.messageTooLarge)
    /// A server received a frame without a masking key (RFC 6455 §5.1).
    public static let unmaskedClientFrame = WebSocketError(.unmaskedClientFrame)
    /// A client received a frame with a masking key (RFC 6455 §5.1).
    public static let maskedServerFrame = WebSocketError(.maskedServerFrame)
    /// A continuation frame arrived while no fragmented message was in progress (RFC 6455 §5.4).
    public static let unexpectedContinuation = WebSocketError(.unexpectedContinuation)
    /// A new text or binary frame arrived before the fragmented message in progress ended (RFC 6455 §5.4).
    public static let dataFrameDuringFragmentedMessage = WebSocketError(.dataFrameDuringFragmentedMessage)
    /// A text message or close reason was not valid UTF-8 (RFC 6455 §8.1).
    public static let invalidUTF8 = WebSocketError(.invalidUTF8)
    /// A Close frame's payload was one byte long (RFC 6455 §5.5.1: a body starts with a 2-byte code).
    public static let invalidClosePayload = WebSocketError(.invalidClosePayload)
    /// A Close frame carried a status code not allowed on the wire (RFC 6455 §7.4).
    public static let invalidCloseCode = WebSocketError(.invalidCloseCode)
    /// A compressed message could not be inflated, or RSV1 was misused (RFC 7692 §6).
    public static let compressionError = WebSocketError(.compressionError)

    /// The close code to send when failing the connection for this error (RFC 6455 §7.4.1).
    public var closeCode: WebSocketCloseCode {
        switch code {
        case .frameTooLarge, .messageTooLarge: .messageTooBig
        case .invalidUTF8: .invalidFramePayloadData
        default: .protocolError
        }
    }

    public var description: String {
        let base: String
        switch code {
        case .reservedOpcode: base = "frame uses a reserved opcode (RFC 6455 §5.2)"
        case .reservedBitsNotNegotiated: base = "frame sets an RSV bit no negotiated extension defines (RFC 6455 §5.2)"
        case .fragmentedControlFrame: base = "control frame has FIN clear; control frames cannot be fragmented (RFC 6455 §5.5)"
        case .controlFrameTooLarge: base = "control frame payload exceeds 125 bytes (RFC 6455 §5.5)"
        case .nonMinimalLength: base = "payload length is not minimally encoded (RFC 6455 §5.2)"
        case .lengthTopBitSet: base = "64-bit payload length has its most significant bit set (RFC 6455 §5.2)"
        case .frameTooLarge: base = "frame payload exceeds the configured maximum frame size"
        case .messageTooLarge: base = "message exceeds the configured maximum message size"
        case .unmaskedClientFrame: base = "client frame is not masked (RFC 6455 §5.1)"
        case .maskedServerFrame: base = "server frame is masked (RFC 6455 §5.1)"
        case .unexpectedContinuation: base = "continuation frame without a fragmented message in progress (RFC 6455 §5.4)"
        case .dataFrameDuringFragmentedMessage: base = "new data frame before the fragmented message ended (RFC 6455 §5.4)"
        case .invalidUTF8: base = "text is not valid UTF-8 (RFC 6455 §8.1)"
        case .invalidClosePayload: base = "close frame payload is 1 byte; it must be empty or start with a 2-byte code (RFC 6455 §5.5.1)"
        case .invalidCloseCode: base = "close frame carries a status code not allowed on the wire (RFC 6455 §7.4)"
        case .compressionError: base = "permessage-deflate data is invalid (RFC 7692 §6)"
        }
        return detail.isEmpty ? base : "\(base): \(detail)"
    }

    /// Matches errors by kind, ignoring ``detail``, so `catch WebSocketError.frameTooLarge` works.
    public static func ~= (pattern: WebSocketError, value: any Error) -> Bool {
        (value as? WebSocketError)?.code == pattern.code
    }

    public static func == (lhs: WebSocketError, rhs: WebSocketError) -> Bool {
        lhs.code == rhs.code
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(code)
    }
}

extension WebSocketError {
    /// The reason sent in the Close frame that fails the connection; cut to 123 bytes when written.
    var closeReason: String { description }
}
