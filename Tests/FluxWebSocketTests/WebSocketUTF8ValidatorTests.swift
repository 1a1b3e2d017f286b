import FluxTesting
import FluxWebSocket
import NIOCore
import Testing

@Suite struct WebSocketUTF8ValidatorTests {
    static func isValid(_ bytes: [UInt8]) -> Bool {
        var validator = WebSocketUTF8Validator()
        return validator.validate(ByteBuffer(bytes: bytes)) && validator.finish()
    }

    static func reference(_ bytes: [UInt8]) -> Bool {
        String(validating: bytes, as: UTF8.self) != nil
    }

    @Test func acceptsValidText() {
        #expect(Self.isValid([]))
        #expect(Self.isValid(Array("Hello-µ@ßöäüàá-UTF-8!!".utf8)))
        #expect(Self.isValid(Array("κόσμε 𝄞 \u{10FFFF} \u{FFFF} \u{D7FF} \u{E000}".utf8)))
        #expect(Self.isValid(Array(String(repeating: "plain ascii ", count: 100).utf8)))
    }

    @Test func rejectsInvalidSequences() {
        let invalid: [[UInt8]] = [
            [0x80], [0xBF], [0xC0, 0x80], [0xC1, 0xBF],  // lone continuation, overlong 2-byte
            [0xE0, 0x80, 0x80], [0xE0, 0x9F, 0xBF],  // overlong 3-byte
            [0xED, 0xA0, 0x80], [0xED, 0xBF, 0xBF],  // UTF-16 surrogates
            [0xF0, 0x8F, 0xBF, 0xBF],  // overlong 4-byte
            [0xF4, 0x90, 0x80, 0x80], [0xF5, 0x80, 0x80, 0x80], [0xFE], [0xFF],  // above U+10FFFF
            [0xCE, 0xBA, 0xE1, 0xBD, 0xB9, 0xCF, 0x83, 0xCE, 0xBC, 0xCE, 0xB5, 0xED, 0xA0, 0x80, 0x65, 0x64, 0x69, 0x74, 0x65, 0x64],
        ]
        for bytes in invalid { #expect(!Self.isValid(bytes), "\(bytes)") }
    }

    @Test func finishRejectsTruncatedSequences() {
        var validator = WebSocketUTF8Validator()
        let prefixAccepted = validator.validate(ByteBuffer(bytes: [0x41, 0xE2, 0x82]))
        #expect(prefixAccepted)
        #expect(!validator.isAtCharacterBoundary)
        let finished = validator.finish()
        #expect(!finished)
        let accepted = validator.validate(ByteBuffer(bytes: [0x41]))
        #expect(accepted)
        let finishedAgain = validator.finish()
        #expect(finishedAgain, "finish resets")
    }

    @Test func sequencesSplitAcrossChunks() {
        let bytes = Array("aé€𝄞z".utf8)
        for split in 0...bytes.count {
            var validator = WebSocketUTF8Validator()
            let headAccepted = validator.validate(ByteBuffer(bytes: Array(bytes[..<split])))
            #expect(headAccepted)
            let tailAccepted = validator.validate(ByteBuffer(bytes: Array(bytes[split...])))
            #expect(tailAccepted)
            let finished = validator.finish()
            #expect(finished)
        }
    }

    @Test func failsFastAtTheFirstBadByte() {
        var validator = WebSocketUTF8Validator()
        let prefixAccepted = validator.validate(ByteBuffer(bytes: Array("valid so far ".utf8) + [0xF4]))
        #expect(prefixAccepted)
        let badByteAccepted = validator.validate(ByteBuffer(bytes: [0x90]))
        #expect(!badByteAccepted, "F4 90 is above U+10FFFF: fail here, mid-sequence")
        #expect(validator.hasFailed)
        let afterFailureAccepted = validator.validate(ByteBuffer(bytes: [0x41]))
        #expect(!afterFailureAccepted, "stays failed")
        validator.reset()
        let accepted = validator.validate(ByteBuffer(bytes: [0x41]))
        #expect(accepted)
        let finishedAfterReset = validator.finish()
        #expect(finishedAfterReset)
    }

    @Test func invalidByteAfterLongASCIIRun() {
        for position in 0..<40 {
            var bytes = [UInt8](repeating: 0x61, count: 40)
            bytes[position] = 0xFF
            #expect(!Self.isValid(bytes), "position \(position)")
        }
    }

    @Test func matchesTheStandardLibraryOnAllTwoByteInputs() {
        for a in 0...255 {
            for b in 0...255 {
                let bytes = [UInt8(a), UInt8(b)]
                #expect(Self.isValid(bytes) == Self.reference(bytes))
            }
        }
    }

    @Test func matchesTheStandardLibraryOnAllThreeByteInputsWithALeadAbove0xDF() {
        for a in 0xE0...0xF4 {
            for b in 0x70...0xC5 {
                for c in 0x70...0xC5 {
                    let bytes = [UInt8(a), UInt8(b), UInt8(c)]
                    if Self.isValid(bytes) != Self.reference(bytes) {
                        Issue.record("mismatch on \(bytes)")
                    }
                }
            }
        }
    }

    @Test func matchesTheStandardLibraryOnRandomMixedInput() {
        var generator = SeededGenerator(seed: 99)
        let alphabet: [UInt8] = [0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC2, 0xDF, 0xE0, 0xE1, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF4, 0xF5, 0xFF]
        for _ in 0..<20000 {
            let length = Int.random(in: 1...12, using: &generator)
            let bytes = (0..<length).map { _ in alphabet.randomElement(using: &generator)! }
            if Self.isValid(bytes) != Self.reference(bytes) {
                Issue.record("mismatch on \(bytes)")
            }
        }
    }
}
