/// A WebSocket close status code (RFC 6455 §7.4).
///
/// An open set: applications may use codes 3000–4999, so this is a struct with static members.
public struct WebSocketCloseCode: Hashable, Sendable, CustomStringConvertible {
    /// The 16-bit status code as sent in the first two bytes of a Close frame's payload.
    public let rawValue: UInt16

    /// Creates a close code from its wire value. Any value is representable; see ``isValidOnWire``.
    public init(rawValue: UInt16) {
        self.rawValue = rawValue
    }

    /// 1000: the purpose of the connection has been fulfilled (RFC 6455 §7.4.1).
    public static let normalClosure = WebSocketCloseCode(rawValue: 1000)
    /// 1001: an endpoint is going away, e.g. a server shutting down (RFC 6455 §7.4.1).
    public static let goingAway = WebSocketCloseCode(rawValue: 1001)
    /// 1002: the peer violated the protocol (RFC 6455 §7.4.1).
    public static let protocolError = WebSocketCloseCode(rawValue: 1002)
    /// 1003: the endpoint received a type of data it cannot accept (RFC 6455 §7.4.1).
    public static let unsupportedData = WebSocketCloseCode(rawValue: 1003)
    /// 1005: no status code was present. Reported locally, never sent on the wire (RFC 6455 §7.4.1).
    public static let noStatusReceived = WebSocketCloseCode(rawValue: 1005)
    /// 1006: the connection closed without a Close frame. Reported locally, never sent (RFC 6455 §7.4.1).
    public static let abnormalClosure = WebSocketCloseCode(rawValue: 1006)
    /// 1007: a message contained data inconsistent with its type, e.g. invalid UTF-8 in text (RFC 6455 §7.4.1).
    public static let invalidFramePayloadData = WebSocketCloseCode(rawValue: 1007)
    /// 1008: a message violated the endpoint's policy (RFC 6455 §7.4.1).
    public static let policyViolation = WebSocketCloseCode(rawValue: 1008)
    /// 1009: a message was too big to process (RFC 6455 §7.4.1).
    public static let messageTooBig = WebSocketCloseCode(rawValue: 1009)
    /// 1010: the client expected the server to negotiate an extension it did not (RFC 6455 §7.4.1).
    public static let mandatoryExtension = WebSocketCloseCode(rawValue: 1010)
    /// 1011: the server met an unexpected condition (RFC 6455 §7.4.1).
    public static let internalServerError = WebSocketCloseCode(rawValue: 1011)
    /// 1012: the service is restarting (IANA WebSocket Close Code registry, RFC 6455 §11.7).
    public static let serviceRestart = WebSocketCloseCode(rawValue: 1012)
    /// 1013: try again later (IANA registry, RFC 6455 §11.7).
    public static let tryAgainLater = WebSocketCloseCode(rawValue: 1013)
    /// 1014: a gateway received an invalid response upstream (IANA registry, RFC 6455 §11.7).
    public static let badGateway = WebSocketCloseCode(rawValue: 1014)
    /// 1015: the TLS handshake failed. Reported locally, never sent (RFC 6455 §7.4.1).
    public static let tlsHandshakeFailure = WebSocketCloseCode(rawValue: 1015)

    /// Whether this code may appear in a Close frame on the wire (RFC 6455 §7.4, as the Autobahn
    /// TestSuite checks it): 1000–1003, 1007–1014 and 3000–4999. Codes below 1000, 1004–1006, 1015 and
    /// 1016–2999 are invalid; receiving one fails the connection with ``protocolError``.
    public var isValidOnWire: Bool {
        switch rawValue {
        case 1000...1003, 1007...1014, 3000...4999: true
        default: false
        }
    }

    public var description: String { String(rawValue) }
}
