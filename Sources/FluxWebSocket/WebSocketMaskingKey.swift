import NIOCore

/// The 4-byte masking key of a client-to-server frame (RFC 6455 §5.3).
///
/// Masking XORs payload byte *i* with key byte *i mod 4*; applying the mask twice restores the data, so
/// ``apply(to:offset:)`` both masks and unmasks. The work is done eight bytes at a time.
public struct WebSocketMaskingKey: Hashable, Sendable {
    /// The key bytes in wire order, packed big-endian (first wire byte in the most significant position).
    public let rawValue: UInt32

    /// Creates a key from its four bytes in wire order.
    public init(_ b0: UInt8, _ b1: UInt8, _ b2: UInt8, _ b3: UInt8) {
        self.rawValue = UInt32(b0) << 24 | UInt32(b1) << 16 | UInt32(b2) << 8 | UInt32(b3)
    }

    /// Creates a key from its wire bytes packed big-endian (as read by `ByteBuffer.readInteger(as: UInt32.self)`).
    public init(rawValue: UInt32) {
        self.rawValue = rawValue
    }

    /// A key from the system's random number generator, as RFC 6455 §5.3 requires for each client frame
    /// ("unpredictable"; derived from a strong source of entropy).
    public static func random() -> WebSocketMaskingKey {
        var generator = SystemRandomNumberGenerator()
        return random(using: &generator)
    }

    /// A key drawn from the given generator (tests pass a seeded one).
    public static func random<G: RandomNumberGenerator>(using generator: inout G) -> WebSocketMaskingKey {
        WebSocketMaskingKey(rawValue: generator.next())
    }

    /// The key byte at `index` (0–3) in wire order.
    @inlinable
    public subscript(index: Int) -> UInt8 {
        UInt8(truncatingIfNeeded: rawValue >> (24 - 8 * UInt32(index & 3)))
    }

    /// An 8-byte pattern whose in-memory bytes are the key repeated twice, starting at key byte `offset % 4`.
    @inlinable
    func wordPattern(startingAt offset: Int) -> UInt64 {
        var pattern: UInt64 = 0
        withUnsafeMutableBytes(of: &pattern) { bytes in
            for i in 0..<8 {
                bytes[i] = self[(offset &+ i) & 3]
            }
        }
        return pattern
    }

    /// XORs `bytes` with the key, as payload bytes starting at payload position `offset` (RFC 6455 §5.3).
    ///
    /// Pass the number of payload bytes already processed as `offset` to mask a payload in several pieces.
    @inlinable
    public func apply(to bytes: UnsafeMutableRawBufferPointer, offset: Int = 0) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        let count = bytes.count
        let pattern = wordPattern(startingAt: offset)
        var index = 0
        while index &+ 8 <= count {
            let word = (base + index).loadUnaligned(as: UInt64.self)
            (base + index).storeBytes(of: word ^ pattern, as: UInt64.self)
            index &+= 8
        }
        // The tail is shorter than a word: key position continues from `offset + index`,
        // and `index` is a multiple of 8 (so of 4), hence the pattern's byte order still applies.
        withUnsafeBytes(of: pattern) { patternBytes in
            var i = 0
            while index < count {
                base.storeBytes(of: base.load(fromByteOffset: index, as: UInt8.self) ^ patternBytes[i], toByteOffset: index, as: UInt8.self)
                index &+= 1
                i &+= 1
            }
        }
    }

    /// XORs the readable bytes of `buffer` with the key, as payload bytes starting at payload position `offset`.
    @inlinable
    public func apply(to buffer: inout ByteBuffer, offset: Int = 0) {
        buffer.withUnsafeMutableReadableBytes { apply(to: $0, offset: offset) }
    }
}
