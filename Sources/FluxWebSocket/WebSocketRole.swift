/// Which side of a WebSocket connection an endpoint is (RFC 6455 §1.2): it decides the masking direction
/// (§5.1) and who closes TCP first (§7.1.1).
public enum WebSocketRole: Hashable, Sendable {
    /// Accepts connections; receives masked frames, sends unmasked ones, closes TCP first.
    case server
    /// Opens connections; receives unmasked frames, masks what it sends, waits for the server to close TCP.
    case client
}
