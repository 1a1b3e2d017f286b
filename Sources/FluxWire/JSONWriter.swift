import NIOCore

/// Writes JSON straight into a `ByteBuffer`: the feed's hot path, with no intermediate objects.
///
/// Inlinable (with ``JSONCursor``), so that the gateway's writes compile as they did inside its own module.
public struct JSONWriter {
    public var buffer: ByteBuffer

    @inlinable public init(buffer: ByteBuffer) { self.buffer = buffer }

    @inlinable public mutating func raw(_ text: StaticString) {
        buffer.writeStaticString(text)
    }

    @inlinable public mutating func integer(_ value: Int64) {
        write(reserving: JSONCursor.maximumIntegerSize) { $0.integer(value) }
    }

    /// Writes a JSON string literal with the escapes RFC 8259 §7 requires.
    @inlinable public mutating func string(_ value: String) {
        write(reserving: JSONCursor.maximumSize(ofString: value)) { $0.string(value) }
    }

    /// Writes `"key":`.
    @inlinable public mutating func key(_ key: StaticString) {
        buffer.writeInteger(UInt8(ascii: "\""))
        buffer.writeStaticString(key)
        buffer.writeStaticString("\":")
    }

    /// Reserves `maximum` bytes and lets `body` write up to that many through a cursor, in one `ByteBuffer` call.
    @inlinable public mutating func write(reserving maximum: Int, _ body: (inout JSONCursor) -> Void) {
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: maximum) { memory in
            var cursor = JSONCursor(UnsafeMutableRawBufferPointer(rebasing: memory[..<maximum]))
            body(&cursor)
            return cursor.count
        }
    }
}
