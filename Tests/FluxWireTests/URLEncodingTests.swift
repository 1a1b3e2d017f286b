import FluxWire
import Testing

@Suite struct URLEncodingTests {
    /// Exactly RFC 3986's unreserved characters (§2.3), checked for every byte value.
    @Test func unreservedBytesAreTheRFCsSet() {
        let unreserved = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~".utf8)
        for byte in UInt8.min...UInt8.max {
            #expect(URLEncoding.isUnreserved(byte) == unreserved.contains(byte), "byte \(byte)")
        }
    }

    @Test func percentEncodesEverythingElse() {
        #expect(URLEncoding.encodePathSegment("a-b.c_d~1") == "a-b.c_d~1")
        #expect(URLEncoding.encodePathSegment("id 1/\"é") == "id%201%2F%22%C3%A9")
    }
}
