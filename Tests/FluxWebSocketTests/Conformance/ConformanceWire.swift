import FluxTesting
import FluxWebSocket
import NIOCore

/// A frame as the scripted peer sends it: every header bit under the script's control, so a case can send
/// what a correct endpoint never would (reserved bits and opcodes, fragmented control frames, bad masking).
struct ScriptFrame: Sendable {
    /// Whether the peer masks this frame: as its role requires (client peers mask, server peers do not),
    /// or forced either way to test the testee's masking checks (RFC 6455 §5.1).
    enum Masking: Sendable {
        case asRoleRequires
        case masked
        case unmasked
    }

    var fin = true
    /// RSV1–RSV3 as a 3-bit number the way Autobahn writes it: 4 is RSV1, 2 is RSV2, 1 is RSV3.
    var rsv: UInt8 = 0
    /// Any 4-bit opcode, reserved ones included.
    var opcode: UInt8
    var payload: ByteBuffer
    var masking = Masking.asRoleRequires

    static func text(_ text: String, fin: Bool = true, rsv: UInt8 = 0) -> ScriptFrame {
        ScriptFrame(fin: fin, rsv: rsv, opcode: 0x1, payload: ByteBuffer(string: text))
    }

    static func text(bytes: [UInt8], fin: Bool = true) -> ScriptFrame {
        ScriptFrame(fin: fin, opcode: 0x1, payload: ByteBuffer(bytes: bytes))
    }

    static func binary(_ bytes: [UInt8], fin: Bool = true, rsv: UInt8 = 0) -> ScriptFrame {
        ScriptFrame(fin: fin, rsv: rsv, opcode: 0x2, payload: ByteBuffer(bytes: bytes))
    }

    static func continuation(_ text: String, fin: Bool) -> ScriptFrame {
        ScriptFrame(fin: fin, opcode: 0x0, payload: ByteBuffer(string: text))
    }

    static func continuation(bytes: [UInt8], fin: Bool) -> ScriptFrame {
        ScriptFrame(fin: fin, opcode: 0x0, payload: ByteBuffer(bytes: bytes))
    }

    static func ping(_ payload: [UInt8] = [], fin: Bool = true, rsv: UInt8 = 0) -> ScriptFrame {
        ScriptFrame(fin: fin, rsv: rsv, opcode: 0x9, payload: ByteBuffer(bytes: payload))
    }

    static func ping(_ text: String) -> ScriptFrame { .ping(Array(text.utf8)) }

    static func pong(_ payload: [UInt8] = [], fin: Bool = true) -> ScriptFrame {
        ScriptFrame(fin: fin, opcode: 0xA, payload: ByteBuffer(bytes: payload))
    }

    static func pong(_ text: String) -> ScriptFrame { .pong(Array(text.utf8)) }

    /// A Close frame with a status code (any 16-bit value) and reason bytes (any bytes, any length).
    static func close(code: UInt16, reason: [UInt8] = [], rsv: UInt8 = 0) -> ScriptFrame {
        var payload = ByteBuffer()
        payload.writeInteger(code)
        payload.writeBytes(reason)
        return ScriptFrame(rsv: rsv, opcode: 0x8, payload: payload)
    }

    /// A Close frame with exactly these payload bytes (empty, one byte…).
    static func close(rawPayload: [UInt8]) -> ScriptFrame {
        ScriptFrame(opcode: 0x8, payload: ByteBuffer(bytes: rawPayload))
    }

    static func reserved(opcode: UInt8, _ payload: [UInt8] = []) -> ScriptFrame {
        ScriptFrame(opcode: opcode, payload: ByteBuffer(bytes: payload))
    }

    /// The frame's bytes. Encoding is the one job given to the code under test (`WebSocketFrameEncoder`):
    /// what the tests check is read back by ``ConformanceFrameReader``, written independently here.
    func encoded(mask: Bool, using generator: inout SeededGenerator) -> ByteBuffer {
        let frame = WebSocketFrame(
            fin: fin, rsv1: rsv & 4 != 0, rsv2: rsv & 2 != 0, rsv3: rsv & 1 != 0,
            opcode: WebSocketOpcode(rawValue: opcode & 0xF)!,
            maskKey: mask ? WebSocketMaskingKey.random(using: &generator) : nil,
            data: payload)
        return WebSocketFrameEncoder.encode(frame, allocator: ByteBufferAllocator())
    }
}

/// A frame read back from the testee, parsed by the test's own reader, payload unmasked.
struct WireFrame {
    var fin: Bool
    /// RSV1–RSV3 as a 3-bit number (4 is RSV1).
    var rsv: UInt8
    var opcode: UInt8
    var masked: Bool
    var payload: ByteBuffer
}

/// A minimal RFC 6455 §5.2 frame reader, independent of the code under test.
enum ConformanceFrameReader {
    struct Malformed: Error, CustomStringConvertible {
        var description: String
    }

    /// Takes one whole frame from the front of `buffer`; `nil` (consuming nothing) while it is incomplete.
    static func read(_ buffer: inout ByteBuffer) throws -> WireFrame? {
        let start = buffer.readerIndex
        guard let first = buffer.getInteger(at: start, as: UInt8.self),
            let second = buffer.getInteger(at: start + 1, as: UInt8.self)
        else { return nil }
        var cursor = start + 2
        var length = Int(second & 0x7F)
        if length == 126 {
            guard let value = buffer.getInteger(at: cursor, as: UInt16.self) else { return nil }
            guard value >= 126 else { throw Malformed(description: "16-bit length \(value) is not minimal") }
            length = Int(value)
            cursor += 2
        } else if length == 127 {
            guard let value = buffer.getInteger(at: cursor, as: UInt64.self) else { return nil }
            guard value >> 63 == 0, value > 0xFFFF else { throw Malformed(description: "64-bit length \(value) is invalid or not minimal") }
            length = Int(value)
            cursor += 8
        }
        let masked = second & 0x80 != 0
        var key: UInt32 = 0
        if masked {
            guard let value = buffer.getInteger(at: cursor, as: UInt32.self) else { return nil }
            key = value
            cursor += 4
        }
        guard buffer.writerIndex - cursor >= length else { return nil }
        var payload = ByteBuffer()
        payload.reserveCapacity(length)
        payload.writeImmutableBuffer(buffer.getSlice(at: cursor, length: length)!)
        if masked { unmask(&payload, key: key) }
        buffer.moveReaderIndex(to: cursor + length)
        return WireFrame(fin: first & 0x80 != 0, rsv: (first >> 4) & 0x7, opcode: first & 0xF, masked: masked, payload: payload)
    }

    /// XORs with the key (RFC 6455 §5.3), a word at a time.
    static func unmask(_ payload: inout ByteBuffer, key: UInt32) {
        let keyBytes: [UInt8] = [UInt8(key >> 24), UInt8(key >> 16 & 0xFF), UInt8(key >> 8 & 0xFF), UInt8(key & 0xFF)]
        var pattern: UInt64 = 0
        withUnsafeMutableBytes(of: &pattern) { bytes in
            for i in 0..<8 { bytes[i] = keyBytes[i % 4] }
        }
        payload.withUnsafeMutableReadableBytes { bytes in
            let words = bytes.count / 8
            for index in 0..<words {
                let offset = index * 8
                bytes.storeBytes(of: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self) ^ pattern, toByteOffset: offset, as: UInt64.self)
            }
            for index in (words * 8)..<bytes.count {
                bytes[index] ^= keyBytes[index % 4]
            }
        }
    }
}

/// What the testee sent, as the peer saw it: whole messages, control frames and protocol violations.
enum ConformanceEvent: Equatable, CustomStringConvertible, Sendable {
    case text(ByteBuffer)
    case binary(ByteBuffer)
    case ping(ByteBuffer)
    case pong(ByteBuffer)
    /// A Close frame: its status code (`nil` for an empty body) and reason bytes.
    case close(code: UInt16?, reason: ByteBuffer)
    /// Something no conforming endpoint sends (wrong masking, bad RSV bits, a broken fragment sequence…).
    case violation(String)

    static func text(_ text: String) -> ConformanceEvent { .text(ByteBuffer(string: text)) }
    static func pong(_ text: String) -> ConformanceEvent { .pong(ByteBuffer(string: text)) }
    static func pong(bytes: [UInt8]) -> ConformanceEvent { .pong(ByteBuffer(bytes: bytes)) }

    var description: String {
        func show(_ buffer: ByteBuffer) -> String {
            let bytes = buffer.readableBytesView
            let head = bytes.prefix(24).map { String($0, radix: 16) }.joined(separator: " ")
            return "\(bytes.count) bytes [\(head)\(bytes.count > 24 ? " …" : "")]"
        }
        switch self {
        case .text(let data): return "text(\(show(data)))"
        case .binary(let data): return "binary(\(show(data)))"
        case .ping(let data): return "ping(\(show(data)))"
        case .pong(let data): return "pong(\(show(data)))"
        case .close(let code, let reason): return "close(\(code.map(String.init) ?? "no code"), reason \(reason.readableBytes) bytes)"
        case .violation(let text): return "violation(\(text))"
        }
    }
}

/// A conformance check that could not go on, with what went wrong.
struct ConformanceProblem: Error, CustomStringConvertible {
    var description: String
}
