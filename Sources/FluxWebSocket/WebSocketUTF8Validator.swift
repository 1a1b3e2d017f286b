import NIOCore

/// An incremental UTF-8 validator (RFC 3629, as RFC 6455 §8.1 requires for text messages).
///
/// A deterministic finite automaton in the style of Björn Höhrmann's decoder, fed in chunks of any size:
/// it fails as soon as a byte makes the input invalid, including sequences split across frames, and
/// ``finish()`` rejects a message that ends inside a sequence. Runs of ASCII are skipped 8 bytes at a time.
public struct WebSocketUTF8Validator: Hashable, Sendable {
    @usableFromInline static let accept: UInt8 = 0
    @usableFromInline static let reject: UInt8 = 12

    @usableFromInline var state: UInt8 = WebSocketUTF8Validator.accept

    /// Creates a validator at the start of a message.
    public init() {}

    /// Whether the input so far is valid and does not end inside a multi-byte sequence.
    public var isAtCharacterBoundary: Bool { state == Self.accept }

    /// Whether the input so far has already been found invalid.
    public var hasFailed: Bool { state == Self.reject }

    /// Feeds more bytes. Returns `false` as soon as the input so far cannot be the prefix of valid UTF-8;
    /// once failed, it keeps returning `false` until ``reset()``.
    public mutating func validate(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard state != Self.reject else { return false }
        guard let base = bytes.baseAddress else { return true }
        let count = bytes.count
        var state = self.state
        var index = 0
        Self.table.withUnsafeBufferPointer { table in
            while index < count {
                if state == Self.accept {
                    // ASCII fast path: skip whole words with no high bit set.
                    while index &+ 8 <= count {
                        let word = (base + index).loadUnaligned(as: UInt64.self)
                        if word & 0x8080_8080_8080_8080 != 0 { break }
                        index &+= 8
                    }
                    if index == count { break }
                }
                let byte = base.load(fromByteOffset: index, as: UInt8.self)
                let byteClass = table[Int(byte)]
                state = table[256 &+ Int(state) &+ Int(byteClass)]
                if state == Self.reject { break }
                index &+= 1
            }
        }
        self.state = state
        return state != Self.reject
    }

    /// Feeds the readable bytes of `buffer` (see ``validate(_:)-(UnsafeRawBufferPointer)``).
    public mutating func validate(_ buffer: ByteBuffer) -> Bool {
        buffer.withUnsafeReadableBytes { validate($0) }
    }

    /// Ends the message: returns `true` only if all input was valid and no sequence was left incomplete.
    /// Leaves the validator ready for the next message.
    public mutating func finish() -> Bool {
        defer { state = Self.accept }
        return state == Self.accept
    }

    /// Discards all state, ready for a new message.
    public mutating func reset() {
        state = Self.accept
    }

    /// Byte classes (256 entries) followed by the transition table (states are multiples of 12).
    /// From Björn Höhrmann, "Flexible and Economical UTF-8 Decoder" (2010), MIT licensed table data.
    static let table: [UInt8] = [
        // 0x00–0x7F
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        // 0x80–0x9F
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9,
        // 0xA0–0xBF
        7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
        // 0xC0–0xDF
        8, 8, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
        // 0xE0–0xFF
        10, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 4, 3, 3, 11, 6, 6, 6, 5, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8,
        // Transitions: row = state / 12, column = byte class.
        0, 12, 24, 36, 60, 96, 84, 12, 12, 12, 48, 72,
        12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12,
        12, 0, 12, 12, 12, 12, 12, 0, 12, 0, 12, 12,
        12, 24, 12, 12, 12, 12, 12, 24, 12, 24, 12, 12,
        12, 12, 12, 12, 12, 12, 12, 24, 12, 12, 12, 12,
        12, 24, 12, 12, 12, 12, 12, 12, 12, 24, 12, 12,
        12, 12, 12, 12, 12, 12, 12, 36, 12, 36, 12, 12,
        12, 36, 12, 12, 12, 12, 12, 36, 12, 36, 12, 12,
        12, 36, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12,
    ]
}
