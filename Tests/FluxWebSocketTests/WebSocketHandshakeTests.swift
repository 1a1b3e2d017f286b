import FluxWebSocket
import Testing

@Suite struct WebSocketHandshakeTests {
    /// RFC 6455 §1.3's example key and accept value.
    @Test func acceptValueMatchesTheRFCExample() {
        #expect(WebSocketHandshake.acceptValue(forKey: "dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    }

    @Test func keyValidity() {
        #expect(WebSocketHandshake.isValidKey("dGhlIHNhbXBsZSBub25jZQ=="))
        #expect(!WebSocketHandshake.isValidKey("dGhlIHNhbXBsZSBub25jZQ"), "unpadded")
        #expect(!WebSocketHandshake.isValidKey("dGhlIHNhbXBsZSBub25jZTE="), "17 bytes")
        #expect(!WebSocketHandshake.isValidKey("dGhlIHNhbXBsZSBub25j"), "15 bytes")
        #expect(!WebSocketHandshake.isValidKey("dGhlIHNhbXBsZSBub25jZ!=="), "bad character")
        #expect(!WebSocketHandshake.isValidKey(""))
    }

    @Test func randomKeysAreValidAndDiffer() {
        let first = WebSocketHandshake.randomKey()
        let second = WebSocketHandshake.randomKey()
        #expect(WebSocketHandshake.isValidKey(first) && WebSocketHandshake.isValidKey(second))
        #expect(first != second)
    }
}
