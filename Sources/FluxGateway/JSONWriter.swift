import NIOCore

/// Writes JSON straight into a `ByteBuffer`: the feed's hot path, with no intermediate objects.
struct JSONWriter {
    var buffer: ByteBuffer

    init(buffer: ByteBuffer) { self.buffer = buffer }

    mutating func raw(_ text: StaticString) {
        buffer.writeStaticString(text)
    }

    mutating func raw(bytes: [UInt8]) {
        buffer.writeBytes(bytes)
    }

    mutating func integer(_ value: Int64) {
        // Small, common values avoid String allocation through a digit loop.
        if value == 0 {
            buffer.writeInteger(UInt8(ascii: "0"))
            return
        }
        var magnitude = value.magnitude
        if value < 0 { buffer.writeInteger(UInt8(ascii: "-")) }
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes of scratch, enough for 20 digits
        withUnsafeMutableBytes(of: &digits) { scratch in
            var index = scratch.count
            while magnitude > 0 {
                index -= 1
                scratch[index] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
            }
            buffer.writeBytes(UnsafeRawBufferPointer(rebasing: scratch[index...]))
        }
    }

    private static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    /// Writes a JSON string literal with the escapes RFC 8259 requires.
    mutating func string(_ value: String) {
        buffer.writeInteger(UInt8(ascii: "\""))
        var value = value
        value.withUTF8 { utf8 in
            var runStart = 0
            for index in 0..<utf8.count {
                let byte = utf8[index]
                guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
                if runStart < index { buffer.writeBytes(UnsafeBufferPointer(rebasing: utf8[runStart..<index])) }
                runStart = index + 1
                switch byte {
                case UInt8(ascii: "\""): buffer.writeStaticString("\\\"")
                case UInt8(ascii: "\\"): buffer.writeStaticString("\\\\")
                case 0x0A: buffer.writeStaticString("\\n")
                case 0x0D: buffer.writeStaticString("\\r")
                case 0x09: buffer.writeStaticString("\\t")
                default:
                    buffer.writeStaticString("\\u00")
                    buffer.writeInteger(Self.hex[Int(byte >> 4)])
                    buffer.writeInteger(Self.hex[Int(byte & 0x0F)])
                }
            }
            if runStart < utf8.count { buffer.writeBytes(UnsafeBufferPointer(rebasing: utf8[runStart...])) }
        }
        buffer.writeInteger(UInt8(ascii: "\""))
    }

    /// Writes `"key":`.
    mutating func key(_ key: StaticString) {
        buffer.writeInteger(UInt8(ascii: "\""))
        buffer.writeStaticString(key)
        buffer.writeStaticString("\":")
    }

    /// Writes `"…"` around bytes that need no escaping (digits, letters, punctuation of dates).
    mutating func quoted(_ body: ((UnsafeRawBufferPointer) -> Void) -> Void) {
        buffer.writeInteger(UInt8(ascii: "\""))
        body { bytes in buffer.writeBytes(bytes) }
        buffer.writeInteger(UInt8(ascii: "\""))
    }

    /// Writes the JSON string `"<base>/events/<percent-encoded id>"` without building it first.
    mutating func url(base: String, eventID: String) {
        if eventID.utf8.allSatisfy(URLEncoding.isUnreserved) && !base.utf8.contains(where: { $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") || $0 < 0x20 }) {
            buffer.writeInteger(UInt8(ascii: "\""))
            buffer.writeString(base)
            buffer.writeStaticString("/events/")
            buffer.writeString(eventID)
            buffer.writeInteger(UInt8(ascii: "\""))
        } else {
            string(base + "/events/" + URLEncoding.encodePathSegment(eventID))
        }
    }
}
