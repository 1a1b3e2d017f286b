/// Writes JSON through a pointer into bytes reserved beforehand (``JSONWriter/write(reserving:_:)``).
///
/// The feed's hot path writes a whole envelope with one `ByteBuffer` call: each `ByteBuffer` write checks
/// uniqueness and exclusive access, which costs more than the few bytes most fields are. Every write here is
/// bounds-checked against the reservation, so a wrong size estimate traps instead of writing past it.
///
/// Inlinable, like ``JSONWriter``: the gateway calls these per field of every event, from another module.
public struct JSONCursor {
    @usableFromInline let memory: UnsafeMutableRawBufferPointer
    @usableFromInline var written = 0

    /// The bytes written so far.
    @inlinable public var count: Int { written }

    @inlinable public init(_ memory: UnsafeMutableRawBufferPointer) { self.memory = memory }

    /// The most bytes ``string(_:)`` writes for `value`: every byte escaped as `\u00XX`, and the quotes.
    @inlinable public static func maximumSize(ofString value: String) -> Int { value.utf8.count * 6 + 2 }

    /// The most bytes ``integer(_:)`` writes: a sign and 19 digits.
    @inlinable public static var maximumIntegerSize: Int { 20 }

    @inlinable public mutating func byte(_ byte: UInt8) {
        precondition(written < memory.count, "JSONCursor: writing past the reserved bytes")
        memory.storeBytes(of: byte, toByteOffset: written, as: UInt8.self)
        written += 1
    }

    @inlinable public mutating func raw(_ bytes: UnsafeRawBufferPointer) {
        precondition(bytes.count <= memory.count - written, "JSONCursor: writing past the reserved bytes")
        guard let source = bytes.baseAddress, let target = memory.baseAddress else { return }
        (target + written).copyMemory(from: source, byteCount: bytes.count)
        written += bytes.count
    }

    @inlinable public mutating func raw(_ text: StaticString) {
        text.withUTF8Buffer { raw(UnsafeRawBufferPointer($0)) }
    }

    @inlinable public mutating func raw(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { raw($0) }
    }

    /// Writes the decimal digits of `value`.
    @inlinable public mutating func integer(_ value: Int64) {
        if value < 0 { byte(UInt8(ascii: "-")) }
        var magnitude = value.magnitude
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes of scratch, enough for 20 digits
        withUnsafeMutableBytes(of: &digits) { scratch in
            var index = scratch.count
            repeat {
                index -= 1
                scratch[index] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
            } while magnitude > 0
            raw(UnsafeRawBufferPointer(rebasing: scratch[index...]))
        }
    }

    /// Writes a JSON string literal with the escapes RFC 8259 §7 requires.
    @inlinable public mutating func string(_ value: String) {
        byte(UInt8(ascii: "\""))
        var value = value
        value.withUTF8 { utf8 in
            var runStart = 0
            for index in 0..<utf8.count {
                let byte = utf8[index]
                guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
                if runStart < index { raw(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: utf8[runStart..<index]))) }
                runStart = index + 1
                switch byte {
                case UInt8(ascii: "\""): raw("\\\"")
                case UInt8(ascii: "\\"): raw("\\\\")
                case 0x0A: raw("\\n")
                case 0x0D: raw("\\r")
                case 0x09: raw("\\t")
                default:
                    let hex: StaticString = "0123456789abcdef"
                    raw("\\u00")
                    self.byte(hex.utf8Start[Int(byte >> 4)])
                    self.byte(hex.utf8Start[Int(byte & 0x0F)])
                }
            }
            if runStart < utf8.count { raw(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: utf8[runStart...]))) }
        }
        byte(UInt8(ascii: "\""))
    }
}
