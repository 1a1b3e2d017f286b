import FluxCore
import FluxWire
import FuzzSupport

// FluxWire's byte-range JSON reader (`JSONParser`) and what reads the wire with it (`EnvelopeDecoder`,
// `PushMessage`, `PushAcknowledgement`, `EventPayload(validating:)`), on arbitrary bytes. Invariants:
// - `isValid` and `EventPayload(validating:)` agree with `parse`;
// - an accepted document written again with `JSONWriter` (strings re-escaped, numbers as their literal text)
//   parses to the same value, and so do the bytes of every member's range on their own;
// - parsing with a member's key as an opaque key accepts whatever the full parse accepts, with the same ranges;
// - a push message that decodes, encoded again with `PushMessage.json(baseURL:)`, decodes to the same message,
//   and an ack to the same ack.
//
// Input layout: the whole input is the document (the first byte is no flag: a JSON corpus stays readable).

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let parsed = try? JSONParser.parse(bytes)
    fuzzCheck(JSONParser.isValid(bytes) == (parsed != nil), "isValid disagrees with parse")
    fuzzCheck(((try? EventPayload(validating: bytes)) != nil) == (parsed != nil), "EventPayload(validating:) disagrees with parse")

    if let parsed {
        fuzzCheck(parsed.range.upperBound <= bytes.count && parsed.range.lowerBound >= 0, "range outside the input")
        var json = JSONWriter(buffer: .init())
        write(parsed, into: &json)
        let again = try? JSONParser.parse(Array(json.buffer.readableBytesView))
        fuzzCheck(again.map { same(parsed, $0) } ?? false, "the document written again parses to another value")
        if case .object(let members) = parsed.kind {
            for (key, value) in members.prefix(8) {
                let alone = try? JSONParser.parse(bytes[value.range])
                fuzzCheck(alone.map { same(value, $0) } ?? false, "the bytes of member \(key)'s range parse to another value")
                // A repeated key's lookup gives its first member, in both parses.
                let opaque = try? JSONParser.parse(bytes, opaqueKeys: [key])
                fuzzCheck(opaque != nil && opaque?[key]?.range == parsed[key]?.range, "parsing with \(key) opaque gives another answer")
            }
        }
    }

    if let message = PushMessage(json: bytes) {
        let encoded = Array(message.json(baseURL: "http://h").readableBytesView)
        fuzzCheck(PushMessage(json: encoded) == message, "a push message encoded again decodes to another message")
    }
    if let ack = PushAcknowledgement(json: bytes) {
        fuzzCheck(ack.position.rawValue >= 0, "an ack with a negative position")
        fuzzCheck(PushAcknowledgement(json: Array(ack.json.utf8)) == ack, "an ack encoded again decodes to another ack")
    }
    return 0
}

/// Writes `value` as compact JSON.
private func write(_ value: JSONValue, into json: inout JSONWriter) {
    switch value.kind {
    case .object(let members):
        json.raw("{")
        for (index, member) in members.enumerated() {
            if index > 0 { json.raw(",") }
            json.string(member.key)
            json.raw(":")
            write(member.value, into: &json)
        }
        json.raw("}")
    case .array(let elements):
        json.raw("[")
        for (index, element) in elements.enumerated() {
            if index > 0 { json.raw(",") }
            write(element, into: &json)
        }
        json.raw("]")
    case .string(let string): json.string(string)
    case .number(let text): json.buffer.writeString(text)
    case .bool(let bool): bool ? json.raw("true") : json.raw("false")
    case .null, .opaque: json.raw("null")
    }
}

/// Whether two values are the same JSON (ranges aside).
private func same(_ a: JSONValue, _ b: JSONValue) -> Bool {
    switch (a.kind, b.kind) {
    case (.object(let x), .object(let y)):
        x.count == y.count && zip(x, y).allSatisfy { $0.key == $1.key && same($0.value, $1.value) }
    case (.array(let x), .array(let y)):
        x.count == y.count && zip(x, y).allSatisfy { same($0, $1) }
    case (.string(let x), .string(let y)): x == y
    case (.number(let x), .number(let y)): x == y
    case (.bool(let x), .bool(let y)): x == y
    case (.null, .null): true
    default: false
    }
}
