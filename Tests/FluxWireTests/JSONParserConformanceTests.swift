import FluxWire
import Testing

/// `JSONParser` against RFC 8259, sorted the way JSONTestSuite sorts its cases: documents a parser must accept
/// (`y_`), must reject (`n_`), and may do either with (`i_`: what ours does, and why). Our own cases, written for
/// this parser (its nesting limit, its 8-byte string scan, its opaque values).
@Suite struct JSONParserConformanceTests {
    /// One document, named like a JSONTestSuite case.
    struct Case: CustomTestStringConvertible, Sendable {
        let name: String
        let bytes: [UInt8]
        init(_ name: String, _ text: String) { (self.name, self.bytes) = (name, Array(text.utf8)) }
        init(_ name: String, bytes: [UInt8]) { (self.name, self.bytes) = (name, bytes) }
        var testDescription: String { name }
    }

    static let deepest = JSONParser.maximumDepth

    // MARK: y_: must accept

    static let accepted: [Case] = [
        Case("y_structure_top_level_number", "42"),
        Case("y_structure_top_level_string", #""x""#),
        Case("y_structure_top_level_null", "null"),
        Case("y_structure_top_level_false_with_whitespace", " \t\r\nfalse\n\r\t "),
        Case("y_object_empty", "{}"),
        Case("y_object_empty_with_whitespace", "{ \n }"),
        Case("y_object_nested", #"{"a":{"b":{"c":[]}}}"#),
        Case("y_object_empty_key", #"{"":0}"#),
        Case("y_object_escaped_key", #"{"\u0061\n":1}"#),
        Case("y_array_empty", "[]"),
        Case("y_array_mixed", #"[1, -2.5e+3, "s", true, false, null, {}, []]"#),
        Case("y_array_nested_to_the_limit", String(repeating: "[", count: deepest) + String(repeating: "]", count: deepest)),
        Case("y_object_nested_to_the_limit", String(repeating: #"{"a":"#, count: deepest - 1) + "{}" + String(repeating: "}", count: deepest - 1)),
        Case("y_number_zero", "0"),
        Case("y_number_minus_zero", "-0"),
        Case("y_number_minus_zero_fraction", "-0.0"),
        Case("y_number_fraction", "0.5"),
        Case("y_number_exponent_capital", "1E2"),
        Case("y_number_exponent_plus", "1e+2"),
        Case("y_number_exponent_minus", "1e-2"),
        Case("y_number_exponent_leading_zeros", "1e007"),
        Case("y_number_every_part", "-12.340e-5"),
        Case("y_string_escapes", #""\" \\ \/ \b \f \n \r \t""#),
        Case("y_string_unicode_escape", #""\u00e9\u20AC""#),
        Case("y_string_surrogate_pair", #""\ud83d\ude80""#),
        Case("y_string_escaped_nul", #""a\u0000b""#),
        Case("y_string_raw_utf8", "\"zürich € 🚀\""),
        Case("y_string_raw_del", "\"\u{7F}\""),
        Case("y_string_noncharacter_uffff", bytes: [0x22, 0xEF, 0xBF, 0xBF, 0x22]),
        Case("y_string_max_scalar", bytes: [0x22, 0xF4, 0x8F, 0xBF, 0xBF, 0x22]),
        Case("y_string_long_ascii", "\"" + String(repeating: "abcdefgh", count: 1000) + "\""),
    ]

    @Test(arguments: accepted)
    func accepts(_ document: Case) throws {
        _ = try JSONParser.parse(document.bytes)
    }

    /// Escapes and raw UTF-8 decode to the same scalars.
    @Test func decodesStrings() throws {
        #expect(try JSONParser.parse(Array(#""\" \\ \/ \b \f \n \r \t""#.utf8)).stringValue == "\" \\ / \u{8} \u{C} \n \r \t")
        #expect(try JSONParser.parse(Array(#""\ud83d\ude80\u00E9""#.utf8)).stringValue == "🚀é")
        #expect(try JSONParser.parse(Array(#""a\u0000b""#.utf8)).stringValue == "a\u{0}b")
        #expect(try JSONParser.parse([0x22, 0xF4, 0x8F, 0xBF, 0xBF, 0x22]).stringValue == "\u{10FFFF}")
    }

    // MARK: n_: must reject

    static let rejected: [Case] = [
        Case("n_structure_empty_input", ""),
        Case("n_structure_whitespace_only", " \t\r\n"),
        Case("n_structure_two_values", "1 2"),
        Case("n_structure_trailing_garbage", "{}x"),
        Case("n_structure_unclosed_array", "[1"),
        Case("n_structure_unclosed_object", #"{"a":1"#),
        Case("n_structure_unopened_array", "1]"),
        Case("n_structure_nul_after_value", bytes: Array("[]".utf8) + [0x00]),
        Case("n_structure_nul_alone", bytes: [0x00]),
        Case("n_structure_form_feed_as_whitespace", "[\u{C}1]"),
        Case("n_structure_vertical_tab_as_whitespace", "[\u{B}1]"),
        Case("n_structure_no_break_space_as_whitespace", "[\u{A0}1]"),
        Case("n_structure_comment_block", "[1/* c */]"),
        Case("n_structure_comment_line", "[1]// c"),
        Case("n_structure_too_deep_array", String(repeating: "[", count: deepest + 1) + String(repeating: "]", count: deepest + 1)),
        Case("n_structure_too_deep_object", String(repeating: #"{"a":"#, count: deepest) + "{}" + String(repeating: "}", count: deepest)),
        Case("n_structure_very_deep_unclosed", String(repeating: "[", count: 100_000)),
        Case("n_array_trailing_comma", "[1,]"),
        Case("n_array_leading_comma", "[,1]"),
        Case("n_array_double_comma", "[1,,2]"),
        Case("n_array_missing_comma", "[1 2]"),
        Case("n_array_colon", "[1:2]"),
        Case("n_object_trailing_comma", #"{"a":1,}"#),
        Case("n_object_comma_only", "{,}"),
        Case("n_object_missing_colon", #"{"a" 1}"#),
        Case("n_object_missing_value", #"{"a":}"#),
        Case("n_object_missing_comma", #"{"a":1 "b":2}"#),
        Case("n_object_number_key", "{1:2}"),
        Case("n_object_bare_key", "{a:1}"),
        Case("n_object_single_quoted_key", "{'a':1}"),
        Case("n_number_leading_zero", "01"),
        Case("n_number_minus_leading_zero", "-01"),
        Case("n_number_plus", "+1"),
        Case("n_number_minus_alone", "-"),
        Case("n_number_dot_first", ".5"),
        Case("n_number_dot_last", "1."),
        Case("n_number_exponent_without_digits", "1e"),
        Case("n_number_exponent_sign_only", "1e+"),
        Case("n_number_hex", "0x1F"),
        Case("n_number_infinity", "Infinity"),
        Case("n_number_minus_infinity", "-Infinity"),
        Case("n_number_nan", "NaN"),
        Case("n_number_space_after_minus", "- 1"),
        Case("n_literal_capitalized_true", "True"),
        Case("n_literal_capitalized_null", "NULL"),
        Case("n_literal_truncated_false", "fals"),
        Case("n_string_single_quoted", "'a'"),
        Case("n_string_unterminated", #""abc"#),
        Case("n_string_unterminated_after_backslash", #""abc\"#),
        Case("n_string_raw_newline", "\"a\nb\""),
        Case("n_string_raw_tab", "\"a\tb\""),
        Case("n_string_raw_nul", bytes: [0x22, 0x61, 0x00, 0x62, 0x22]),
        Case("n_string_raw_unit_separator", "\"\u{1F}\""),
        Case("n_string_invalid_escape", #""\x41""#),
        Case("n_string_capital_u_escape", #""\U0041""#),
        Case("n_string_short_unicode_escape", #""\u41""#),
        Case("n_string_non_hex_unicode_escape", #""\u00G1""#),
        Case("n_string_escaped_raw_newline", "\"\\\n\""),
        Case("n_string_lone_high_surrogate", #""\ud800""#),
        Case("n_string_lone_low_surrogate", #""\udc00""#),
        Case("n_string_high_surrogate_then_letter", #""\ud800\u0041""#),
        Case("n_string_high_surrogate_then_text", #""\ud800abcdef""#),
        Case("n_string_reversed_surrogates", #""\ude80\ud83d""#),
        Case("n_string_overlong_slash", bytes: [0x22, 0xC0, 0xAF, 0x22]),
        Case("n_string_overlong_nul", bytes: [0x22, 0xC0, 0x80, 0x22]),
        Case("n_string_overlong_three_bytes", bytes: [0x22, 0xE0, 0x80, 0xAF, 0x22]),
        Case("n_string_utf8_encoded_surrogate", bytes: [0x22, 0xED, 0xA0, 0x80, 0x22]),
        Case("n_string_beyond_u10ffff", bytes: [0x22, 0xF4, 0x90, 0x80, 0x80, 0x22]),
        Case("n_string_lone_continuation_byte", bytes: [0x22, 0x80, 0x22]),
        Case("n_string_truncated_sequence", bytes: [0x22, 0xE2, 0x82, 0x22]),
        Case("n_string_byte_ff", bytes: [0x22, 0xFF, 0x22]),
        Case("n_structure_utf8_outside_string", bytes: [0xC3, 0xA9]),
    ]

    @Test(arguments: rejected)
    func rejects(_ document: Case) {
        #expect(throws: JSONParser.Error.self) { try JSONParser.parse(document.bytes) }
    }

    /// Errors say where: the byte offset of what went wrong.
    @Test func errorsGiveTheOffset() throws {
        let error = try #require(throws: JSONParser.Error.self) { try JSONParser.parse(Array(#"[1, 2,]"#.utf8)) }
        #expect(error.offset == 6)
        #expect(error.description.hasPrefix("invalid JSON at byte 6: "))
    }

    // MARK: i_: implementation-defined (RFC 8259 leaves them to the parser)

    /// A byte order mark is rejected: RFC 8259 §8.1 says senders must not add one and parsers *may* ignore it; the
    /// gateway stores payload bytes as sent, and a BOM inside a feed page would be garbage, so it is an error.
    @Test func i_structure_byte_order_mark() {
        #expect(!JSONParser.isValid([0xEF, 0xBB, 0xBF] + Array("{}".utf8)))
        #expect(!JSONParser.isValid([0xEF, 0xBB, 0xBF]))
    }

    /// Numbers of any size and precision are accepted and kept as their literal text (payloads are stored byte for
    /// byte, so nothing is rounded); an integer reader (`int64Value`) gives `nil` when the value is no `Int64`.
    @Test func i_number_huge_and_tiny() throws {
        let cases: [(text: String, int64: Int64?)] = [
            ("1e999", nil), ("-1e999", nil), ("1e-999", nil), ("123456789012345678901234567890", nil),
            ("9223372036854775807", .max), ("-9223372036854775808", .min), ("9223372036854775808", nil),
            ("-0", 0), ("1.0", nil), ("1E400", nil), ("0." + String(repeating: "0", count: 500) + "1", nil),
        ]
        for (text, int64) in cases {
            let value = try JSONParser.parse(Array(text.utf8))
            guard case .number(let literal) = value.kind else {
                Issue.record("\(text) is not a number")
                continue
            }
            #expect(literal == text)
            #expect(value.int64Value == int64, "\(text)")
        }
    }

    /// Duplicate keys are accepted (RFC 8259 §4: names "SHOULD be unique"); every member is kept in order, and a
    /// lookup by key gives the first.
    @Test func i_object_duplicate_keys() throws {
        let value = try JSONParser.parse(Array(#"{"a":1,"a":2,"b":3}"#.utf8))
        #expect(value["a"]?.int64Value == 1)
        guard case .object(let members) = value.kind else {
            Issue.record("not an object")
            return
        }
        #expect(members.map(\.key) == ["a", "a", "b"])
    }

    /// Nesting is limited to `maximumDepth` (256) arrays and objects: deeper documents are rejected with an error,
    /// never a stack overflow (RFC 8259 §9 lets a parser limit depth). Checked above at the limit and one past it.
    @Test func i_structure_nesting_limit() throws {
        #expect(JSONParser.maximumDepth == 256)
        let error = try #require(throws: JSONParser.Error.self) {
            try JSONParser.parse(Array((String(repeating: "[", count: 300) + String(repeating: "]", count: 300)).utf8))
        }
        #expect(error.message.contains("nesting"))
        #expect(error.offset == JSONParser.maximumDepth)
    }

    /// Escaped surrogates must pair (a lone one is rejected: it is no Unicode scalar, and Swift strings hold only
    /// scalars), and an escaped NUL is a NUL in the string; raw NUL bytes are rejected like every control character.
    @Test func i_string_surrogates_and_nul() throws {
        #expect(!JSONParser.isValid(Array(#"["\ud800"]"#.utf8)))
        #expect(!JSONParser.isValid(Array(#"["\udfff"]"#.utf8)))
        #expect(try JSONParser.parse(Array(#""\u0000""#.utf8)).stringValue == "\u{0}")
    }

    /// Opaque values (``JSONParser/parse(_:opaqueKeys:)``, for text already known to be UTF-8) are checked for
    /// structure and escape syntax only: their strings are not checked for UTF-8 or for paired surrogates. The
    /// same document parsed without opaque keys is rejected.
    @Test func i_opaque_values_are_checked_for_structure_only() throws {
        for text in [#"{"p":"\ud800"}"#, #"{"p":["\udc00", 1]}"#] {
            let value = try JSONParser.parse(Array(text.utf8), opaqueKeys: ["p"])
            #expect(value["p"]?.range == 5..<(text.utf8.count - 1))
            #expect(!JSONParser.isValid(Array(text.utf8)))
        }
        let invalidUTF8: [UInt8] = Array(#"{"p":""#.utf8) + [0xFF] + Array(#""}"#.utf8)
        #expect(try JSONParser.parse(invalidUTF8, opaqueKeys: ["p"])["p"] != nil)
        #expect(!JSONParser.isValid(invalidUTF8))
        // Structure is still checked in opaque values, and so is their depth.
        for text in [#"{"p":[1,]}"#, #"{"p":"\x"}"#, #"{"p":01}"#, #"{"p":"a"#] {
            #expect(throws: JSONParser.Error.self) { try JSONParser.parse(Array(text.utf8), opaqueKeys: ["p"]) }
        }
        let deep = #"{"p":"# + String(repeating: "[", count: JSONParser.maximumDepth) + String(repeating: "]", count: JSONParser.maximumDepth) + "}"
        #expect(throws: JSONParser.Error.self) { try JSONParser.parse(Array(deep.utf8), opaqueKeys: ["p"]) }
    }

    /// Every proper prefix of a valid document is rejected (nothing is accepted half-read), and the whole is accepted.
    @Test func i_prefixes_of_a_document_are_rejected() throws {
        let document = Array(#"{"a": [1, -2.5e3, "x\u00e9\ud83d\ude80", true, null], "b": {}}"#.utf8)
        _ = try JSONParser.parse(document)
        for end in 0..<document.count {
            #expect(!JSONParser.isValid(document[..<end]), "prefix of \(end) bytes")
        }
    }
}
