/// Percent-encoding for paths and query strings (RFC 3986), and query-string parsing: the gateway reads request
/// targets with it and writes `url`s and `next` links with it.
public enum URLEncoding {
    /// RFC 3986 §2.3: ALPHA, DIGIT, `-`, `.`, `_`, `~`; one bit per byte value (the envelope's `url` checks every
    /// byte of every event id).
    @inlinable public static func isUnreserved(_ byte: UInt8) -> Bool {
        let below64: UInt64 = 0x03FF_6000_0000_0000  // "-", ".", "0"…"9"
        let from64: UInt64 = 0x47FF_FFFE_87FF_FFFE  // "A"…"Z", "_", "a"…"z", "~"
        let bits = byte < 64 ? below64 : byte < 128 ? from64 : 0
        return bits >> (byte & 63) & 1 == 1
    }

    private static let hex: [UInt8] = Array("0123456789ABCDEF".utf8)

    /// Encodes everything but RFC 3986's unreserved characters.
    public static func encodePathSegment(_ value: String) -> String {
        if value.utf8.allSatisfy(isUnreserved) { return value }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(value.utf8.count * 3)
        for byte in value.utf8 {
            if isUnreserved(byte) {
                bytes.append(byte)
            } else {
                bytes.append(UInt8(ascii: "%"))
                bytes.append(hex[Int(byte >> 4)])
                bytes.append(hex[Int(byte & 0x0F)])
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The value of one hexadecimal digit (either case); `nil` for any other byte.
    public static func hexDigitValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    /// Decodes `%XX` escapes (and `+` as a space when `plusIsSpace`); `nil` for a bad escape or invalid UTF-8.
    public static func decode(_ text: Substring, plusIsSpace: Bool) -> String? {
        if !text.utf8.contains(UInt8(ascii: "%")) && !(plusIsSpace && text.utf8.contains(UInt8(ascii: "+"))) {
            return String(text)
        }
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8)[...]
        while let byte = iterator.popFirst() {
            if byte == UInt8(ascii: "%") {
                guard let high = iterator.popFirst().flatMap(hexDigitValue), let low = iterator.popFirst().flatMap(hexDigitValue) else { return nil }
                bytes.append(high << 4 | low)
            } else if byte == UInt8(ascii: "+") && plusIsSpace {
                bytes.append(UInt8(ascii: " "))
            } else {
                bytes.append(byte)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    /// Splits a query string into decoded name/value pairs, in order; `nil` when an escape is malformed.
    public static func parseQuery(_ query: Substring) -> [(name: String, value: String)]? {
        var items: [(name: String, value: String)] = []
        for part in query.split(separator: "&", omittingEmptySubsequences: true) {
            let pieces = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = decode(pieces[0], plusIsSpace: true) else { return nil }
            let value = pieces.count > 1 ? decode(pieces[1], plusIsSpace: true) : ""
            guard let value else { return nil }
            items.append((name, value))
        }
        return items
    }

    /// Encodes a query value (form style).
    public static func encodeQueryValue(_ value: String) -> String { encodePathSegment(value) }

    /// A user name or password in a URL's userinfo (RFC 3986 §3.2.1: `:`, `@` and `/` must be escaped; so is all
    /// but the unreserved set here).
    public static func encodeUserinfo(_ value: String) -> String { encodePathSegment(value) }
}
