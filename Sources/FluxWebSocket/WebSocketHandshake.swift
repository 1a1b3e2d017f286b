import Crypto
import NIOHTTP1

/// Pieces of the opening handshake shared by both roles (RFC 6455 §4).
public enum WebSocketHandshake {
    /// The GUID appended to the key before hashing (RFC 6455 §1.3, §4.2.2).
    public static let guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    /// The protocol version this implementation speaks (RFC 6455 §4.1, §11.6).
    public static let version = "13"

    /// `Sec-WebSocket-Accept` for a client key: base64(SHA-1(key + GUID)) (RFC 6455 §4.2.2, point 5.4).
    public static func acceptValue(forKey key: String) -> String {
        WebSocketBase64.encode(Insecure.SHA1.hash(data: Array((key + guid).utf8)))
    }

    /// Whether `key` is a valid `Sec-WebSocket-Key`: base64 of exactly 16 bytes (RFC 6455 §4.1, §11.3.1).
    public static func isValidKey(_ key: String) -> Bool {
        WebSocketBase64.decode(key)?.count == 16
    }

    /// A fresh `Sec-WebSocket-Key`: 16 random bytes, base64-encoded (RFC 6455 §4.1, point 7).
    public static func randomKey() -> String {
        var generator = SystemRandomNumberGenerator()
        return randomKey(using: &generator)
    }

    /// A `Sec-WebSocket-Key` from the given generator (tests pass a seeded one).
    public static func randomKey<G: RandomNumberGenerator>(using generator: inout G) -> String {
        let words = (generator.next() as UInt64, generator.next() as UInt64)
        let bytes = withUnsafeBytes(of: words) { Array($0) }
        return WebSocketBase64.encode(bytes)
    }
}

extension HTTPHeaders {
    /// Whether any comma-separated token of header `name` equals `token`, ignoring ASCII case (RFC 7230 §7).
    func containsToken(_ token: String, inHeader name: String) -> Bool {
        self[canonicalForm: name].contains { $0.lowercased() == token.lowercased() }
    }
}
