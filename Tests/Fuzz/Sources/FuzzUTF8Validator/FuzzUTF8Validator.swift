import FluxWebSocket
import FuzzSupport

// Compares `WebSocketUTF8Validator` with the standard library's UTF-8 decoding (`String(validating:as:)`),
// on the input whole and fed in chunks (split lengths from the input), including `finish()` at the end and
// `isAtCharacterBoundary` after every chunk.
//
// Input layout: [split count n] [n split lengths] [text...].

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let splits = input.take(Int(input.byte() & 15))
    let text = input.rest()
    let expected = String(validating: text, as: UTF8.self) != nil

    var whole = WebSocketUTF8Validator()
    let wholeValid = text.withUnsafeBytes { whole.validate($0) } && whole.finish()
    fuzzCheck(wholeValid == expected, "whole input: validator says \(wholeValid), the standard library \(expected)")

    var chunked = WebSocketUTF8Validator()
    var consumed = 0
    var prefixValid = true
    for chunk in chunks(of: text, lengths: splits) {
        let ok = chunk.withUnsafeBytes { chunked.validate($0) }
        consumed += chunk.count
        // A prefix may be the start of valid UTF-8 only if the standard library finds no error before its
        // last (possibly incomplete) sequence; the validator must fail exactly when no extension can help.
        if !ok {
            prefixValid = false
            fuzzCheck(!expected, "validator rejected a prefix of valid UTF-8")
            fuzzCheck(chunked.hasFailed, "validate returned false but hasFailed is false")
            break
        }
        if chunked.isAtCharacterBoundary {
            fuzzCheck(String(validating: text[..<consumed], as: UTF8.self) != nil, "at a boundary after \(consumed) bytes that are not valid UTF-8")
        }
    }
    if prefixValid {
        fuzzCheck(chunked.finish() == expected, "chunked input: validator disagrees with the standard library")
    }
    return 0
}
