/// Reads structured choices off the front of a fuzzer input, then hands out the rest as payload bytes.
///
/// libFuzzer mutates bytes, not structure: taking configuration bits and split points from the input lets
/// it explore roles, limits and chunkings as well as content. Every read is total: past the end it returns
/// zero (or an empty slice), so any input is usable.
public struct FuzzInput {
    private let bytes: UnsafeBufferPointer<UInt8>
    private var position = 0

    /// Wraps the buffer libFuzzer passes to `LLVMFuzzerTestOneInput`.
    public init(_ data: UnsafePointer<UInt8>, _ size: Int) {
        bytes = UnsafeBufferPointer(start: data, count: size)
    }

    /// Bytes not consumed yet.
    public var remaining: Int { bytes.count - position }

    /// The next byte, or 0 at the end.
    public mutating func byte() -> UInt8 {
        guard position < bytes.count else { return 0 }
        defer { position += 1 }
        return bytes[position]
    }

    /// The next little-endian 16-bit value (zero-filled at the end).
    public mutating func uint16() -> UInt16 {
        UInt16(byte()) | UInt16(byte()) << 8
    }

    /// Whether the next byte is odd.
    public mutating func bool() -> Bool { byte() & 1 == 1 }

    /// Up to `count` of the next bytes.
    public mutating func take(_ count: Int) -> [UInt8] {
        let end = min(bytes.count, position + max(0, count))
        defer { position = end }
        return Array(bytes[position..<end])
    }

    /// Everything not consumed yet.
    public mutating func rest() -> [UInt8] { take(remaining) }
}

/// Splits `bytes` into consecutive chunks whose lengths come from `lengths` (cycled; 0 means "1").
public func chunks(of bytes: [UInt8], lengths: [UInt8]) -> [ArraySlice<UInt8>] {
    guard !lengths.isEmpty else { return [bytes[...]] }
    var result: [ArraySlice<UInt8>] = []
    var start = 0
    var index = 0
    while start < bytes.count {
        let length = max(1, Int(lengths[index % lengths.count]))
        let end = min(bytes.count, start + length)
        result.append(bytes[start..<end])
        start = end
        index += 1
    }
    return result
}

/// Stops the process with a message libFuzzer reports as a crash, when an invariant of the code under test
/// does not hold. (`precondition` is also compiled out in `-Ounchecked`; this never is.)
public func fuzzCheck(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String, file: StaticString = #file, line: UInt = #line) {
    if !condition() {
        fatalError("fuzz invariant violated: \(message())", file: file, line: line)
    }
}

/// A `tchar` of RFC 9110 §5.6.2: what a header name is made of (NIOHTTP1's parser only produces such names, and
/// `HTTPHeaders.add` asserts it).
public func isTokenByte(_ byte: UInt8) -> Bool {
    switch byte {
    case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"):
        true
    default:
        "!#$%&'*+-.^_`|~".utf8.contains(byte)
    }
}
