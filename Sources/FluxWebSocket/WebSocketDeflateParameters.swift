/// The permessage-deflate parameters agreed for one connection (RFC 7692 §7.1).
///
/// Produced by the server's negotiation (``WebSocketServerHandshake``) or by the client's validation of the
/// server's response (``WebSocketClientHandshake``); both ends then derive their compressor and decompressor
/// from it with ``compressorConfiguration(isServer:)`` and ``decompressorConfiguration(isServer:)``.
public struct WebSocketDeflateParameters: Hashable, Sendable {
    /// The server resets its compression context after each message (RFC 7692 §7.1.1.1).
    public var serverNoContextTakeover: Bool
    /// The client resets its compression context after each message (RFC 7692 §7.1.1.2).
    public var clientNoContextTakeover: Bool
    /// The server's LZ77 window limit, 8–15; `nil` when absent from the response (meaning 15, RFC 7692 §7.1.2.1).
    public var serverMaxWindowBits: Int?
    /// The client's LZ77 window limit, 8–15; `nil` when absent from the response (meaning 15, RFC 7692 §7.1.2.2).
    public var clientMaxWindowBits: Int?

    /// Creates a parameter set.
    public init(
        serverNoContextTakeover: Bool = false,
        clientNoContextTakeover: Bool = false,
        serverMaxWindowBits: Int? = nil,
        clientMaxWindowBits: Int? = nil
    ) {
        self.serverNoContextTakeover = serverNoContextTakeover
        self.clientNoContextTakeover = clientNoContextTakeover
        self.serverMaxWindowBits = serverMaxWindowBits
        self.clientMaxWindowBits = clientMaxWindowBits
    }

    /// The extension token (RFC 7692 §7).
    public static let extensionName = "permessage-deflate"

    /// The `Sec-WebSocket-Extensions` value of the server's response that agrees to these parameters.
    public var headerValue: String {
        var value = Self.extensionName
        if serverNoContextTakeover { value += "; server_no_context_takeover" }
        if clientNoContextTakeover { value += "; client_no_context_takeover" }
        if let serverMaxWindowBits { value += "; server_max_window_bits=\(serverMaxWindowBits)" }
        if let clientMaxWindowBits { value += "; client_max_window_bits=\(clientMaxWindowBits)" }
        return value
    }

    /// How this endpoint compresses what it sends: its own role's window and context takeover.
    public func compressorConfiguration(isServer: Bool) -> WebSocketDeflateCompressor.Configuration {
        isServer
            ? .init(windowBits: serverMaxWindowBits ?? 15, noContextTakeover: serverNoContextTakeover)
            : .init(windowBits: clientMaxWindowBits ?? 15, noContextTakeover: clientNoContextTakeover)
    }

    /// How this endpoint decompresses what it receives: the peer role's window and context takeover.
    public func decompressorConfiguration(isServer: Bool) -> WebSocketDeflateDecompressor.Configuration {
        isServer
            ? .init(windowBits: clientMaxWindowBits ?? 15, noContextTakeover: clientNoContextTakeover)
            : .init(windowBits: serverMaxWindowBits ?? 15, noContextTakeover: serverNoContextTakeover)
    }
}

/// A permessage-deflate offer as sent by a client, parsed and validated (RFC 7692 §7.1).
struct WebSocketDeflateOffer: Hashable, Sendable {
    var serverNoContextTakeover = false
    var clientNoContextTakeover = false
    /// `server_max_window_bits=N` if present.
    var serverMaxWindowBits: Int?
    /// `.some(nil)` for a bare `client_max_window_bits`, `.some(N)` with a value, `nil` when absent.
    var clientMaxWindowBits: Int??

    /// Validates one extension element: no unknown or repeated parameter, values 8–15 without leading zeros
    /// (RFC 7692 §7.1: such an offer or response must be declined / fails the connection).
    init?(_ element: WebSocketExtensionHeader, isResponse: Bool) {
        guard element.name == WebSocketDeflateParameters.extensionName else { return nil }
        var seen: Set<String> = []
        for parameter in element.parameters {
            guard seen.insert(parameter.name).inserted else { return nil }
            switch parameter.name {
            case "server_no_context_takeover":
                guard parameter.value == nil else { return nil }
                serverNoContextTakeover = true
            case "client_no_context_takeover":
                guard parameter.value == nil else { return nil }
                clientNoContextTakeover = true
            case "server_max_window_bits":
                guard let bits = Self.windowBits(parameter.value) else { return nil }
                serverMaxWindowBits = bits
            case "client_max_window_bits":
                if let value = parameter.value {
                    guard let bits = Self.windowBits(value) else { return nil }
                    clientMaxWindowBits = .some(bits)
                } else {
                    // A bare value is allowed in an offer only (RFC 7692 §7.1.2.2).
                    guard !isResponse else { return nil }
                    clientMaxWindowBits = .some(nil)
                }
            default:
                return nil
            }
        }
    }

    /// Parses `8`…`15` written as plain decimal digits without leading zeros (RFC 7692 §7.1.2.1:
    /// `1*DIGIT`). Checks the digits itself, because `Int("+9")` is 9: a signed value must be declined.
    static func windowBits(_ value: String?) -> Int? {
        guard let value, !value.hasPrefix("0"), value.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }),
            let bits = Int(value), (8...15).contains(bits)
        else { return nil }
        return bits
    }
}
