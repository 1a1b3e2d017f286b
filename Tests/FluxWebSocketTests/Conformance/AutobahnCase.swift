import NIOCore
import Testing

/// One Autobahn TestSuite case, reproduced: a script the peer plays and what the testee must answer.
///
/// The script and the expectation are built lazily, so the multi-megabyte payloads of section 9 exist only
/// while their case runs.
struct AutobahnCase: Sendable, CustomTestStringConvertible {
    /// How the connection must end.
    enum Outcome: Sendable {
        /// The peer sends Close 1000 after the script; the testee echoes it (RFC 6455 §5.5.1). Autobahn: OK.
        case peerClosesNormally
        /// The script sent a Close itself; the testee answers with one of these codes (`nil`: empty body).
        case testeeEchoesClose([UInt16?])
        /// The testee fails the connection (RFC 6455 §7.1.7): Close with this code, then TCP closes.
        case testeeFails(UInt16)
    }

    /// The Autobahn case id ("5.9"); ids with a `+` are cases this suite adds in the spirit of a section.
    let id: String
    let summary: String
    let script: @Sendable () -> [ScriptStep]
    /// The messages and control frames expected before the testee's Close; `nil` when Autobahn grades the
    /// case INFORMATIONAL (any echo is fine).
    let expected: (@Sendable () -> [ConformanceEvent])?
    let outcome: Outcome

    init(
        _ id: String, _ summary: String,
        script: @escaping @Sendable @autoclosure () -> [ScriptStep],
        expect expected: @escaping @Sendable @autoclosure () -> [ConformanceEvent] = [],
        informational: Bool = false,
        outcome: Outcome = .peerClosesNormally
    ) {
        self.id = id
        self.summary = summary
        self.script = script
        self.expected = informational ? nil : expected
        self.outcome = outcome
    }

    var testDescription: String { "\(id) \(summary)" }

    /// The failing outcomes, for checks that apply only to them.
    var failsConnection: Bool {
        if case .testeeFails = outcome { return true }
        return false
    }
}

/// Payload helpers (Autobahn's fill patterns).
enum Payload {
    /// `count` copies of `byte`.
    static func repeated(_ byte: UInt8, _ count: Int) -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: count)
        buffer.writeRepeatingByte(byte, count: count)
        return buffer
    }

    /// `count` bytes of a repeated ASCII text pattern.
    static func text(_ count: Int, pattern: String = "BAsd7&jh23") -> ByteBuffer {
        let unit = Array(pattern.utf8)
        var buffer = ByteBufferAllocator().buffer(capacity: count)
        while buffer.readableBytes + unit.count <= count { buffer.writeBytes(unit) }
        buffer.writeBytes(unit.prefix(count - buffer.readableBytes))
        return buffer
    }

    /// Splits `payload` into a fragmented message of frames of `size` bytes (the last may be shorter).
    static func fragments(of payload: ByteBuffer, size: Int, opcode: UInt8) -> [ScriptFrame] {
        var data = payload
        var frames: [ScriptFrame] = []
        repeat {
            let piece = data.readSlice(length: min(size, data.readableBytes))!
            frames.append(ScriptFrame(fin: data.readableBytes == 0, opcode: frames.isEmpty ? opcode : 0x0, payload: piece))
        } while data.readableBytes > 0
        return frames
    }
}
