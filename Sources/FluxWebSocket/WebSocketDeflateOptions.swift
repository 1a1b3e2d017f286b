/// What an endpoint is willing to do with permessage-deflate (RFC 7692): used by a server to answer offers
/// and by a client to build its offer and check the server's answer.
public struct WebSocketDeflateOptions: Hashable, Sendable {
    /// Server: always reset the server's compressor after each message (so one compressed frame can be sent
    /// to many connections). Client: ask the server for that (RFC 7692 §7.1.1.1).
    public var serverNoContextTakeover: Bool
    /// Ask (server: require) the client to reset its compressor after each message, which lets the receiving
    /// end keep less state (RFC 7692 §7.1.1.2).
    public var clientNoContextTakeover: Bool
    /// The largest server window this endpoint allows, 8–15 (RFC 7692 §7.1.2.1).
    public var serverMaxWindowBits: Int
    /// The largest client window this endpoint allows, 8–15 (RFC 7692 §7.1.2.2).
    public var clientMaxWindowBits: Int

    /// Creates options; window sizes are clamped to 8–15.
    public init(
        serverNoContextTakeover: Bool = false,
        clientNoContextTakeover: Bool = false,
        serverMaxWindowBits: Int = 15,
        clientMaxWindowBits: Int = 15
    ) {
        self.serverNoContextTakeover = serverNoContextTakeover
        self.clientNoContextTakeover = clientNoContextTakeover
        self.serverMaxWindowBits = min(max(serverMaxWindowBits, 8), 15)
        self.clientMaxWindowBits = min(max(clientMaxWindowBits, 8), 15)
    }

    // MARK: Server role

    /// Picks the first acceptable permessage-deflate offer and the parameters of the response
    /// (RFC 7692 §5, §7.1). Offers with unknown, repeated or invalid parameters are declined.
    func negotiateAsServer(offers: [WebSocketExtensionHeader]) -> WebSocketDeflateParameters? {
        for element in offers {
            guard let offer = WebSocketDeflateOffer(element, isResponse: false) else { continue }
            var agreed = WebSocketDeflateParameters()
            agreed.serverNoContextTakeover = offer.serverNoContextTakeover || serverNoContextTakeover
            agreed.clientNoContextTakeover = offer.clientNoContextTakeover || clientNoContextTakeover
            // §7.1.2.1: answer with a value ≤ the client's limit; we may also limit ourselves unasked.
            let serverBits = min(offer.serverMaxWindowBits ?? 15, serverMaxWindowBits)
            if offer.serverMaxWindowBits != nil || serverBits < 15 {
                agreed.serverMaxWindowBits = serverBits
            }
            // §7.1.2.2: only when the client offered the parameter, and ≤ its value if it gave one.
            if let clientOffer = offer.clientMaxWindowBits {
                let clientBits = min(clientOffer ?? 15, clientMaxWindowBits)
                if clientOffer != nil || clientBits < 15 {
                    agreed.clientMaxWindowBits = clientBits
                }
            }
            return agreed
        }
        return nil
    }

    // MARK: Client role

    /// The `Sec-WebSocket-Extensions` value offering permessage-deflate with these options (RFC 7692 §7.1).
    /// Always includes a bare or valued `client_max_window_bits` so the server may limit our window.
    public var offerHeaderValue: String {
        var value = WebSocketDeflateParameters.extensionName
        if serverNoContextTakeover { value += "; server_no_context_takeover" }
        if clientNoContextTakeover { value += "; client_no_context_takeover" }
        if serverMaxWindowBits < 15 { value += "; server_max_window_bits=\(serverMaxWindowBits)" }
        value += clientMaxWindowBits < 15 ? "; client_max_window_bits=\(clientMaxWindowBits)" : "; client_max_window_bits"
        return value
    }

    /// Checks the server's response against our offer (RFC 7692 §7.1): unknown or repeated parameters,
    /// windows larger than we allowed, or a missing `server_no_context_takeover` we required fail the handshake.
    func acceptResponse(_ element: WebSocketExtensionHeader) throws(WebSocketHandshakeError) -> WebSocketDeflateParameters {
        guard let response = WebSocketDeflateOffer(element, isResponse: true) else {
            throw WebSocketHandshakeError(.badExtensionParameters, "invalid parameters in the server's permessage-deflate response")
        }
        if serverNoContextTakeover && !response.serverNoContextTakeover {
            throw WebSocketHandshakeError(.badExtensionParameters, "server_no_context_takeover was requested but not granted")
        }
        if let bits = response.serverMaxWindowBits, bits > serverMaxWindowBits {
            throw WebSocketHandshakeError(.badExtensionParameters, "server_max_window_bits=\(bits) exceeds our \(serverMaxWindowBits)")
        }
        if serverMaxWindowBits < 15 && response.serverMaxWindowBits == nil {
            throw WebSocketHandshakeError(.badExtensionParameters, "server_max_window_bits was requested but not answered")
        }
        var clientBits: Int? = nil
        if let value = response.clientMaxWindowBits {
            guard let bits = value, bits <= clientMaxWindowBits else {
                throw WebSocketHandshakeError(.badExtensionParameters, "client_max_window_bits exceeds our offer")
            }
            clientBits = bits
        }
        return WebSocketDeflateParameters(
            serverNoContextTakeover: response.serverNoContextTakeover,
            clientNoContextTakeover: response.clientNoContextTakeover || clientNoContextTakeover,
            serverMaxWindowBits: response.serverMaxWindowBits,
            clientMaxWindowBits: clientBits ?? (clientMaxWindowBits < 15 ? clientMaxWindowBits : nil)
        )
    }
}
