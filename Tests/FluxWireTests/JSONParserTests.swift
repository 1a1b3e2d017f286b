import FluxWire
import Testing

@Suite struct JSONParserTests {
    @Test(arguments: [
        #"{}"#, #"[]"#, #"null"#, #"true"#, #"false"#, #"0"#, #"-0.5e+10"#, #""a\u00e9\ud83d\ude80""#,
        #" { "a" : [1, {"b": null}], "c": "x\n" } "#, "\"zürich\"",
    ])
    func acceptsValidJSON(_ text: String) throws {
        _ = try JSONParser.parse(Array(text.utf8))
    }

    @Test(arguments: [
        "", "{", "}", "[1,]", "{\"a\":1,}", "01", "1.", "-", "+1", "tru", "nul", "\"unterminated",
        "\"bad \\x escape\"", "\"\\ud800\"", "{\"a\" 1}", "[1 2]", "1 2", "'single'", "\"tab\there\"", "NaN",
    ])
    func rejectsInvalidJSON(_ text: String) {
        #expect(throws: JSONParser.Error.self) { try JSONParser.parse(Array(text.utf8)) }
    }

    @Test func rejectsInvalidUTF8InStrings() {
        #expect(!JSONParser.isValid([0x22, 0xC3, 0x28, 0x22]))
        #expect(!JSONParser.isValid([0x22, 0xFF, 0x22]))
    }

    /// Strings are scanned eight bytes at a time: a quote, escape, control character or non-ASCII byte at any
    /// offset of a word must still be seen, in parsed strings and in skipped (opaque) ones.
    @Test(arguments: 0..<20)
    func seesSpecialBytesAtEveryOffset(offset: Int) throws {
        let padding = String(repeating: "x", count: offset)
        let tail = String(repeating: "y", count: 19 - offset)
        for (json, decoded) in [(#"\""#, "\""), (#"\n"#, "\n"), (#"\u00e9"#, "é"), ("é", "é"), ("🚀", "🚀")] {
            let text = "\"" + padding + json + tail + "\""
            #expect(try JSONParser.parse(Array(text.utf8)).stringValue == padding + decoded + tail)
            let opaque = try JSONParser.parse(Array(("{\"p\":" + text + "}").utf8), opaqueKeys: ["p"])
            #expect(opaque["p"]?.range == 5..<(5 + text.utf8.count))
        }
        #expect(!JSONParser.isValid(Array(("\"" + padding + "\u{1}" + tail + "\"").utf8)))
        #expect(!JSONParser.isValid(Array(("{\"p\":\"" + padding + "\t" + tail + "\"}").utf8)))
        #expect(!JSONParser.isValid([0x22] + Array(padding.utf8) + [0xFF] + Array(tail.utf8) + [0x22]))
        #expect(!JSONParser.isValid(Array(("\"" + padding + tail).utf8)))
    }

    @Test func limitsNesting() {
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        #expect(throws: JSONParser.Error.self) { try JSONParser.parse(Array(deep.utf8)) }
        let fine = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        #expect(JSONParser.isValid(Array(fine.utf8)))
    }

    @Test func keepsRangesAndDecodesValues() throws {
        let text = #"{"name": "x\"y", "n": -12, "payload": {"a": [1, 2]} }"#
        let bytes = Array(text.utf8)
        let value = try JSONParser.parse(bytes)
        #expect(value["name"]?.stringValue == "x\"y")
        #expect(value["n"]?.int64Value == -12)
        let payload = try #require(value["payload"])
        #expect(String(decoding: bytes[payload.range], as: UTF8.self) == #"{"a": [1, 2]}"#)
        #expect(value["missing"] == nil)
        #expect(value.kindName == "object")
    }
}

@Suite struct JSONParserOpaqueTests {
    @Test func opaqueValuesKeepTheirRangeAndAreStillChecked() throws {
        let text = #"{"a": 1, "payload": {"x": [1, "two\n", {"y": null}], "z": "\u00e9"}, "b": "c"}"#
        let bytes = Array(text.utf8)
        let value = try JSONParser.parse(bytes, opaqueKeys: ["payload"])
        let payload = try #require(value["payload"])
        guard case .opaque = payload.kind else {
            Issue.record("payload was built")
            return
        }
        #expect(String(decoding: bytes[payload.range], as: UTF8.self) == #"{"x": [1, "two\n", {"y": null}], "z": "\u00e9"}"#)
        #expect(value["b"]?.stringValue == "c")
        for broken in [#"{"payload": {"x": }}"#, #"{"payload": [1, 2"#, #"{"payload": "bad \q"}"#, #"{"payload": tru}"#] {
            #expect(throws: JSONParser.Error.self) { try JSONParser.parse(Array(broken.utf8), opaqueKeys: ["payload"]) }
        }
    }
}
