import NIOCore

/// Writes JSON straight into a `ByteBuffer`: the feed's hot path, with no intermediate objects.
struct JSONWriter {
    var buffer: ByteBuffer

    init(buffer: ByteBuffer) { self.buffer = buffer }

    mutating func raw(_ text: StaticString) {
        buffer.writeStaticString(text)
    }

    mutating func integer(_ value: Int64) {
        write(reserving: JSONCursor.maximumIntegerSize) { $0.integer(value) }
    }

    /// Writes a JSON string literal with the escapes RFC 8259 §7 requires.
    mutating func string(_ value: String) {
        write(reserving: JSONCursor.maximumSize(ofString: value)) { $0.string(value) }
    }

    /// Writes `"key":`.
    mutating func key(_ key: StaticString) {
        buffer.writeInteger(UInt8(ascii: "\""))
        buffer.writeStaticString(key)
        buffer.writeStaticString("\":")
    }

    /// Reserves `maximum` bytes and lets `body` write up to that many through a cursor, in one `ByteBuffer` call.
    mutating func write(reserving maximum: Int, _ body: (inout JSONCursor) -> Void) {
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: maximum) { memory in
            var cursor = JSONCursor(UnsafeMutableRawBufferPointer(rebasing: memory[..<maximum]))
            body(&cursor)
            return cursor.count
        }
    }
}
