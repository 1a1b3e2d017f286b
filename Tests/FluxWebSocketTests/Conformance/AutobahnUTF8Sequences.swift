/// The UTF-8 sequences of Autobahn section 6.5–6.23, taken from Markus Kuhn's UTF-8 decoder stress test
/// (https://www.cl.cam.ac.uk/~mgk25/ucs/examples/UTF-8-test.txt) in Autobahn's order and grouping.
/// Each is sent as one text message: valid ones come back, invalid ones fail the connection with 1007.
enum AutobahnUTF8Sequences {
    struct Group {
        /// The subsection, 5 for "6.5".
        var number: Int
        var title: String
        var sequences: [(valid: Bool, bytes: [UInt8])]
    }

    /// "κόσμε" in UTF-8.
    static let kosme: [UInt8] = [0xCE, 0xBA, 0xE1, 0xBD, 0xB9, 0xCF, 0x83, 0xCE, 0xBC, 0xCE, 0xB5]

    static let groups: [Group] = {
        var groups: [Group] = []
        func add(_ title: String, _ sequences: [(Bool, [UInt8])]) {
            groups.append(Group(number: groups.count + 5, title: title, sequences: sequences.map { (valid: $0.0, bytes: $0.1) }))
        }
        let hello = Array("hello".utf8), world = Array("world".utf8)
        add("Some valid UTF-8 sequences", [
            (true, hello + [0x24] + world), (true, hello + [0xC2, 0xA2] + world), (true, hello + [0xE2, 0x82, 0xAC] + world),
            (true, hello + [0xF0, 0xA4, 0xAD, 0xA2] + world), (true, kosme),
        ])
        // Every prefix of "κόσμε": valid exactly when it ends on a character boundary.
        add("All prefixes of a valid UTF-8 string that contains multi-byte code points",
            (1...kosme.count).map { length in
                let prefix = Array(kosme.prefix(length))
                return (String(validating: prefix, as: UTF8.self) != nil, prefix)
            })
        add("First possible sequence of a certain length", [
            (true, [0x00]), (true, [0xC2, 0x80]), (true, [0xE0, 0xA0, 0x80]), (true, [0xF0, 0x90, 0x80, 0x80]),
        ])
        add("First possible sequence length 5/6 (invalid codepoints)", [
            (false, [0xF8, 0x88, 0x80, 0x80, 0x80]), (false, [0xFC, 0x84, 0x80, 0x80, 0x80, 0x80]),
        ])
        add("Last possible sequence of a certain length", [
            (true, [0x7F]), (true, [0xDF, 0xBF]), (true, [0xEF, 0xBF, 0xBF]), (true, [0xF4, 0x8F, 0xBF, 0xBF]),
        ])
        add("Last possible sequence length 4/5/6 (invalid codepoints)", [
            (false, [0xF7, 0xBF, 0xBF, 0xBF]), (false, [0xFB, 0xBF, 0xBF, 0xBF, 0xBF]), (false, [0xFD, 0xBF, 0xBF, 0xBF, 0xBF, 0xBF]),
        ])
        add("Other boundary conditions", [
            (true, [0xED, 0x9F, 0xBF]), (true, [0xEE, 0x80, 0x80]), (true, [0xEF, 0xBF, 0xBD]), (true, [0xF4, 0x8F, 0xBF, 0xBF]),
            (false, [0xF4, 0x90, 0x80, 0x80]),
        ])
        add("Unexpected continuation bytes", [
            (false, [0x80]), (false, [0xBF]), (false, [0x80, 0xBF]), (false, [0x80, 0xBF, 0x80]), (false, [0x80, 0xBF, 0x80, 0xBF]),
            (false, [0x80, 0xBF, 0x80, 0xBF, 0x80]), (false, [0x80, 0xBF, 0x80, 0xBF, 0x80, 0xBF]), (false, Array(0x80..<0xBF)),
        ])
        add("Lonely start characters",
            [(0xC0, 0xDF), (0xE0, 0xEF), (0xF0, 0xF7), (0xF8, 0xFB), (0xFC, 0xFD)].map { range in
                (false, (UInt8(range.0)..<UInt8(range.1)).flatMap { [$0, 0x20] })
            })
        let missingLast: [[UInt8]] = [
            [0xC0], [0xE0, 0x80], [0xF0, 0x80, 0x80], [0xF8, 0x80, 0x80, 0x80], [0xFC, 0x80, 0x80, 0x80, 0x80],
            [0xDF], [0xEF, 0xBF], [0xF7, 0xBF, 0xBF], [0xFB, 0xBF, 0xBF, 0xBF], [0xFD, 0xBF, 0xBF, 0xBF, 0xBF],
        ]
        add("Sequences with last continuation byte missing", missingLast.map { (false, $0) })
        add("Concatenation of incomplete sequences", [(false, missingLast.flatMap { $0 })])
        add("Impossible bytes", [(false, [0xFE]), (false, [0xFF]), (false, [0xFE, 0xFE, 0xFF, 0xFF])])
        add("Examples of an overlong ASCII character", [
            (false, [0xC0, 0xAF]), (false, [0xE0, 0x80, 0xAF]), (false, [0xF0, 0x80, 0x80, 0xAF]),
            (false, [0xF8, 0x80, 0x80, 0x80, 0xAF]), (false, [0xFC, 0x80, 0x80, 0x80, 0x80, 0xAF]),
        ])
        add("Maximum overlong sequences", [
            (false, [0xC1, 0xBF]), (false, [0xE0, 0x9F, 0xBF]), (false, [0xF0, 0x8F, 0xBF, 0xBF]),
            (false, [0xF8, 0x87, 0xBF, 0xBF, 0xBF]), (false, [0xFC, 0x83, 0xBF, 0xBF, 0xBF, 0xBF]),
        ])
        add("Overlong representation of the NUL character", [
            (false, [0xC0, 0x80]), (false, [0xE0, 0x80, 0x80]), (false, [0xF0, 0x80, 0x80, 0x80]),
            (false, [0xF8, 0x80, 0x80, 0x80, 0x80]), (false, [0xFC, 0x80, 0x80, 0x80, 0x80, 0x80]),
        ])
        add("Single UTF-16 surrogates",
            [[0xED, 0xA0, 0x80], [0xED, 0xAD, 0xBF], [0xED, 0xAE, 0x80], [0xED, 0xAF, 0xBF], [0xED, 0xB0, 0x80], [0xED, 0xBE, 0x80], [0xED, 0xBF, 0xBF]]
                .map { (false, $0) })
        let high: [[UInt8]] = [[0xED, 0xA0, 0x80], [0xED, 0xAD, 0xBF], [0xED, 0xAE, 0x80], [0xED, 0xAF, 0xBF]]
        let low: [[UInt8]] = [[0xED, 0xB0, 0x80], [0xED, 0xBF, 0xBF]]
        add("Paired UTF-16 surrogates", high.flatMap { h in low.map { (false, h + $0) } })
        // Non-characters are valid UTF-8 (RFC 3629): EF BF BE/BF and F[0-4] [89AB]F BF BE/BF up to U+10FFFF.
        var nonCharacters: [(Bool, [UInt8])] = [(true, [0xEF, 0xBF, 0xBE]), (true, [0xEF, 0xBF, 0xBF])]
        for lead: UInt8 in [0xF0, 0xF1, 0xF2, 0xF3, 0xF4] {
            for second: UInt8 in [0x8F, 0x9F, 0xAF, 0xBF] where !(lead == 0xF4 && second != 0x8F) && !(lead == 0xF0 && second == 0x8F) {
                for last: UInt8 in [0xBE, 0xBF] { nonCharacters.append((true, [lead, second, 0xBF, last])) }
            }
        }
        add("Non-character code points (valid UTF-8)", nonCharacters)
        add("Unicode specials (i.e. replacement char)", (0xB9...0xBF).map { (true, [0xEF, 0xBF, UInt8($0)]) })
        return groups
    }()
}
