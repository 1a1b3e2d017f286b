import NIOCore

/// An incremental WebSocket frame parser (RFC 6455 §5.2), depending on NIOCore's `ByteBuffer` only.
///
/// Feed it bytes as they arrive, split anywhere; each ``parseStep(_:)`` consumes at most one frame. Header
/// rules are checked as soon as the first two bytes are present (fail fast):
/// reserved opcodes, RSV bits no negotiated extension defines, fragmented or oversized control frames
/// (RFC 6455 §5.5), non-minimal length encodings and 64-bit lengths with the top bit set (§5.2), and the
/// configured maximum frame size (§10.4). Masked payloads are unmasked in place before they are returned.
///
/// Masking *policy* (a server requires masked frames, a client forbids them, §5.1) belongs to the connection
/// state machine, which knows the role; the parser reports ``WebSocketFrame/maskKey`` as received.
public struct WebSocketFrameParser: Sendable {
    /// The RSV bits an endpoint accepts, as negotiated by extensions (RFC 6455 §5.2, §9).
    public struct ReservedBits: OptionSet, Hashable, Sendable {
        /// The bits as they sit in the first header byte.
        public let rawValue: UInt8
        /// Creates a set from the bits of the first header byte (0x40, 0x20, 0x10).
        public init(rawValue: UInt8) { self.rawValue = rawValue & 0x70 }
        /// RSV1, used by permessage-deflate to mark compressed messages (RFC 7692 §6).
        public static let rsv1 = ReservedBits(rawValue: 0x40)
        /// RSV2.
        public static let rsv2 = ReservedBits(rawValue: 0x20)
        /// RSV3.
        public static let rsv3 = ReservedBits(rawValue: 0x10)
    }

    /// Limits and negotiated options of a parser.
    public struct Configuration: Hashable, Sendable {
        /// The largest payload accepted in one frame; larger frames fail with ``WebSocketError/frameTooLarge``
        /// (close code 1009). Default 16 MiB.
        public var maxFrameSize: Int
        /// RSV bits that a negotiated extension gives a meaning; any other set bit fails with 1002.
        public var allowedReservedBits: ReservedBits

        /// Creates a configuration.
        public init(maxFrameSize: Int = 1 << 24, allowedReservedBits: ReservedBits = []) {
            precondition(maxFrameSize >= 125, "maxFrameSize must admit control frames (125 bytes)")
            self.maxFrameSize = maxFrameSize
            self.allowedReservedBits = allowedReservedBits
        }
    }

    /// The result of one ``parseStep(_:)``.
    public enum Step: Sendable {
        /// A complete frame, payload unmasked.
        case frame(WebSocketFrame)
        /// The buffer does not yet hold the rest of the current frame; call again when more bytes arrive.
        case needMoreData
    }

    /// A validated header whose payload has not fully arrived yet.
    struct Header: Hashable, Sendable {
        var firstByte: UInt8
        var maskKey: WebSocketMaskingKey?
        var length: Int
    }

    enum State: Hashable, Sendable {
        /// Waiting for a complete header (2 to 14 bytes); nothing consumed yet.
        case header
        /// Header consumed; waiting for `length` payload bytes.
        case payload(Header)
        /// A protocol error occurred; the connection must fail and the parser stays failed.
        case failed(WebSocketError)
    }

    /// The parser's configuration; may be changed between frames (e.g. after extension negotiation).
    public var configuration: Configuration
    private(set) var state: State = .header

    /// Creates a parser.
    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    /// Parses at most one frame from the front of `buffer`, consuming exactly the bytes it uses.
    ///
    /// - Throws: ``WebSocketError`` for a protocol violation; every later call throws the same error.
    public mutating func parseStep(_ buffer: inout ByteBuffer) throws(WebSocketError) -> Step {
        switch state {
        case .failed(let error):
            throw error
        case .header:
            let header: Header
            do {
                guard let parsed = try parseHeader(&buffer) else { return .needMoreData }
                header = parsed
            } catch {
                state = .failed(error)
                throw error
            }
            return takePayload(header, from: &buffer)
        case .payload(let header):
            return takePayload(header, from: &buffer)
        }
    }

    /// Reads a whole header if present (consuming it), validating each rule as soon as its bytes are there.
    private func parseHeader(_ buffer: inout ByteBuffer) throws(WebSocketError) -> Header? {
        let start = buffer.readerIndex
        guard let first = buffer.getInteger(at: start, as: UInt8.self),
            let second = buffer.getInteger(at: start + 1, as: UInt8.self)
        else { return nil }

        let opcode = WebSocketOpcode(uncheckedRawValue: first & 0x0F)
        if opcode.isReserved {
            throw WebSocketError(.reservedOpcode, "opcode 0x\(String(opcode.rawValue, radix: 16))")
        }
        let reserved = first & 0x70
        if reserved & ~configuration.allowedReservedBits.rawValue != 0 {
            throw WebSocketError(.reservedBitsNotNegotiated, "bits 0x\(String(reserved, radix: 16))")
        }
        let length7 = Int(second & 0x7F)
        if opcode.isControl {
            if first & 0x80 == 0 { throw WebSocketError(.fragmentedControlFrame, "\(opcode)") }
            // RFC 7692 §6: permessage-deflate applies to data messages only; no extension we support
            // defines RSV bits on control frames.
            if reserved != 0 { throw WebSocketError(.reservedBitsNotNegotiated, "RSV bit on a \(opcode) frame") }
            if length7 > 125 { throw WebSocketError(.controlFrameTooLarge, "\(opcode)") }
        }

        var cursor = start + 2
        let length: Int
        switch length7 {
        case 126:
            guard let value = buffer.getInteger(at: cursor, as: UInt16.self) else { return nil }
            if value < 126 { throw WebSocketError(.nonMinimalLength, "\(value) in 16 bits") }
            length = Int(value)
            cursor += 2
        case 127:
            guard let top = buffer.getInteger(at: cursor, as: UInt8.self) else { return nil }
            if top & 0x80 != 0 { throw WebSocketError.lengthTopBitSet }
            guard let value = buffer.getInteger(at: cursor, as: UInt64.self) else { return nil }
            if value <= UInt64(UInt16.max) { throw WebSocketError(.nonMinimalLength, "\(value) in 64 bits") }
            guard value <= UInt64(configuration.maxFrameSize) else {
                throw WebSocketError(.frameTooLarge, "\(value) bytes, limit \(configuration.maxFrameSize)")
            }
            length = Int(value)
            cursor += 8
        default:
            length = length7
        }
        if length > configuration.maxFrameSize {
            throw WebSocketError(.frameTooLarge, "\(length) bytes, limit \(configuration.maxFrameSize)")
        }

        var maskKey: WebSocketMaskingKey? = nil
        if second & 0x80 != 0 {
            guard let key = buffer.getInteger(at: cursor, as: UInt32.self) else { return nil }
            maskKey = WebSocketMaskingKey(rawValue: key)
            cursor += 4
        }
        buffer.moveReaderIndex(to: cursor)
        return Header(firstByte: first, maskKey: maskKey, length: length)
    }

    private mutating func takePayload(_ header: Header, from buffer: inout ByteBuffer) -> Step {
        guard buffer.readableBytes >= header.length else {
            state = .payload(header)
            return .needMoreData
        }
        state = .header
        if let key = header.maskKey, header.length > 0 {
            // Unmask in place in the input, then slice: no copy beyond a possible copy-on-write of `buffer`.
            let length = header.length
            buffer.withUnsafeMutableReadableBytes { bytes in
                key.apply(to: UnsafeMutableRawBufferPointer(rebasing: bytes[..<length]))
            }
        }
        let data = buffer.readSlice(length: header.length)!
        let first = header.firstByte
        return .frame(
            WebSocketFrame(
                fin: first & 0x80 != 0,
                rsv1: first & 0x40 != 0,
                rsv2: first & 0x20 != 0,
                rsv3: first & 0x10 != 0,
                opcode: WebSocketOpcode(uncheckedRawValue: first & 0x0F),
                maskKey: header.maskKey,
                data: data
            )
        )
    }
}
