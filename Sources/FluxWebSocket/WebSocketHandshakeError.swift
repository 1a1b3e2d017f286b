/// Why a client's opening handshake failed (RFC 6455 §4.1, "the client MUST _Fail the WebSocket Connection_").
///
/// A struct wrapping a private code; match with the static members (`catch WebSocketHandshakeError.badAccept`).
public struct WebSocketHandshakeError: Error, Hashable, Sendable, CustomStringConvertible {
    enum Code: Hashable, Sendable {
        case unexpectedStatus
        case missingUpgrade
        case missingConnectionUpgrade
        case badAccept
        case unofferedExtension
        case unofferedSubprotocol
        case badExtensionParameters
    }

    let code: Code
    /// What exactly was wrong (header values are the peer's, never secrets of ours).
    public let detail: String

    init(_ code: Code, _ detail: String = "") {
        self.code = code
        self.detail = detail
    }

    /// The server did not answer `101 Switching Protocols` (RFC 6455 §4.1, point 1 of the response checks).
    public static let unexpectedStatus = WebSocketHandshakeError(.unexpectedStatus)
    /// The response lacks `Upgrade: websocket` (RFC 6455 §4.1, point 2).
    public static let missingUpgrade = WebSocketHandshakeError(.missingUpgrade)
    /// The response's `Connection` header lacks the `Upgrade` token (RFC 6455 §4.1, point 3).
    public static let missingConnectionUpgrade = WebSocketHandshakeError(.missingConnectionUpgrade)
    /// `Sec-WebSocket-Accept` is missing or does not match our key (RFC 6455 §4.1, point 4).
    public static let badAccept = WebSocketHandshakeError(.badAccept)
    /// The server chose an extension we did not offer (RFC 6455 §4.1, point 5).
    public static let unofferedExtension = WebSocketHandshakeError(.unofferedExtension)
    /// The server chose a subprotocol we did not offer (RFC 6455 §4.1, point 6).
    public static let unofferedSubprotocol = WebSocketHandshakeError(.unofferedSubprotocol)
    /// The server's permessage-deflate parameters are invalid or not allowed by our offer (RFC 7692 §7.1).
    public static let badExtensionParameters = WebSocketHandshakeError(.badExtensionParameters)

    public var description: String {
        let base: String
        switch code {
        case .unexpectedStatus: base = "the server did not switch protocols (expected status 101)"
        case .missingUpgrade: base = "the response has no 'Upgrade: websocket' header"
        case .missingConnectionUpgrade: base = "the response's Connection header has no 'Upgrade' token"
        case .badAccept: base = "Sec-WebSocket-Accept does not match the key we sent"
        case .unofferedExtension: base = "the server selected an extension we did not offer"
        case .unofferedSubprotocol: base = "the server selected a subprotocol we did not offer"
        case .badExtensionParameters: base = "the server's permessage-deflate parameters are invalid for our offer"
        }
        return detail.isEmpty ? base : "\(base): \(detail)"
    }

    /// Matches errors by kind, ignoring ``detail``.
    public static func ~= (pattern: WebSocketHandshakeError, value: any Error) -> Bool {
        (value as? WebSocketHandshakeError)?.code == pattern.code
    }

    public static func == (lhs: WebSocketHandshakeError, rhs: WebSocketHandshakeError) -> Bool {
        lhs.code == rhs.code
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(code)
    }
}
