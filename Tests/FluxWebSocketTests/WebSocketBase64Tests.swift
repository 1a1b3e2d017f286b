@testable import FluxWebSocket
import Testing

@Suite struct WebSocketBase64Tests {
    /// RFC 4648 §10 test vectors.
    @Test func rfc4648Vectors() {
        let vectors = ["": "", "f": "Zg==", "fo": "Zm8=", "foo": "Zm9v", "foob": "Zm9vYg==", "fooba": "Zm9vYmE=", "foobar": "Zm9vYmFy"]
        for (plain, encoded) in vectors {
            #expect(WebSocketBase64.encode(Array(plain.utf8)) == encoded)
            #expect(WebSocketBase64.decode(encoded) == Array(plain.utf8))
        }
    }

    @Test func roundTripsEveryLength() {
        for length in 0..<40 {
            let bytes = randomBytes(length, seed: UInt64(length))
            #expect(WebSocketBase64.decode(WebSocketBase64.encode(bytes)) == bytes)
        }
    }

    @Test func rejectsMalformedInput() {
        for bad in ["Zm8", "Zm=8", "Zm8=Zm8=", "Z===", "Zm9v!A==", "Zm9 v", "===="] {
            #expect(WebSocketBase64.decode(bad) == nil, "\(bad)")
        }
    }
}
