import FluxWire
import NIOCore
import Testing

@Suite struct JSONWriterTests {
    private func written(_ body: (inout JSONWriter) -> Void) -> String {
        var json = JSONWriter(buffer: ByteBuffer())
        body(&json)
        return String(buffer: json.buffer)
    }

    @Test func writesIntegersKeysAndRawText() {
        #expect(written { $0.integer(0) } == "0")
        #expect(written { $0.integer(Int64.max) } == "9223372036854775807")
        #expect(written { $0.integer(Int64.min) } == "-9223372036854775808")
        #expect(written { $0.raw("{"); $0.key("a"); $0.integer(-1); $0.raw("}") } == #"{"a":-1}"#)
    }

    /// RFC 8259 §7: quote, backslash and every control character escaped; everything else as it is.
    @Test func escapesWhatRFC8259Requires() throws {
        #expect(written { $0.string("a\"b\\c\n\r\t\u{0}\u{1F}\u{7F}é🚀/") } == #""a\"b\\c\n\r\t\u0000\u001f"# + "\u{7F}é🚀/\"")
        let every = String(decoding: (0..<128).map { UInt8($0) }, as: UTF8.self)
        let text = written { $0.string(every) }
        #expect(try JSONParser.parse(Array(text.utf8)).stringValue == every)
    }

    /// The size bounds hold for the worst cases (a cursor traps past its reservation).
    @Test func theWorstCasesFitTheReservation() {
        let controls = String(repeating: "\u{1}", count: 100)
        var json = JSONWriter(buffer: ByteBuffer())
        json.write(reserving: JSONCursor.maximumSize(ofString: controls) + JSONCursor.maximumIntegerSize) { cursor in
            cursor.string(controls)
            cursor.integer(Int64.min)
            #expect(cursor.count == 100 * 6 + 2 + 20)
        }
    }
}
