import NIOHTTP1

/// The client side of the opening handshake (RFC 6455 §4.1): builds the upgrade request and checks the
/// server's `101` response.
public struct WebSocketClientHandshake: Sendable {
    /// The `Sec-WebSocket-Key` sent, 16 random bytes base64-encoded (RFC 6455 §4.1, point 7).
    public let key: String
    /// Subprotocols offered, in order of preference (RFC 6455 §4.1, point 10).
    public var subprotocols: [String]
    /// permessage-deflate to offer (RFC 7692 §5); `nil` offers no extension.
    public var deflate: WebSocketDeflateOptions?

    /// Creates a handshake with a fresh random key.
    public init(subprotocols: [String] = [], deflate: WebSocketDeflateOptions? = nil, key: String = WebSocketHandshake.randomKey()) {
        self.key = key
        self.subprotocols = subprotocols
        self.deflate = deflate
    }

    /// What the server agreed to.
    public struct Acceptance: Hashable, Sendable {
        /// The subprotocol the server selected, if any.
        public var subprotocol: String?
        /// The permessage-deflate parameters in force, if the server accepted the offer.
        public var deflate: WebSocketDeflateParameters?
    }

    /// The upgrade request for `path` (with its query) on `host` (with `:port` when not the default).
    public func requestHead(host: String, path: String, additionalHeaders: HTTPHeaders = [:]) -> HTTPRequestHead {
        var headers: HTTPHeaders = [
            "Host": host,
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": key,
            "Sec-WebSocket-Version": WebSocketHandshake.version,
        ]
        if !subprotocols.isEmpty {
            headers.add(name: "Sec-WebSocket-Protocol", value: subprotocols.joined(separator: ", "))
        }
        if let deflate {
            headers.add(name: "Sec-WebSocket-Extensions", value: deflate.offerHeaderValue)
        }
        headers.add(contentsOf: additionalHeaders)
        return HTTPRequestHead(version: .http1_1, method: .GET, uri: path.isEmpty ? "/" : path, headers: headers)
    }

    /// Checks the server's response (RFC 6455 §4.1, the six response checks; RFC 7692 §7.1 for deflate).
    ///
    /// - Throws: ``WebSocketHandshakeError`` naming the first check that failed; the client must then close.
    public func validate(_ response: HTTPResponseHead) throws(WebSocketHandshakeError) -> Acceptance {
        let headers = response.headers
        guard response.status == .switchingProtocols else {
            throw WebSocketHandshakeError(.unexpectedStatus, "got \(response.status.code)")
        }
        guard headers.containsToken("websocket", inHeader: "Upgrade") else { throw WebSocketHandshakeError.missingUpgrade }
        guard headers.containsToken("upgrade", inHeader: "Connection") else {
            throw WebSocketHandshakeError.missingConnectionUpgrade
        }
        let accepts = headers["Sec-WebSocket-Accept"]
        guard accepts.count == 1, accepts[0].trimmingASCIISpaces() == WebSocketHandshake.acceptValue(forKey: key) else {
            throw WebSocketHandshakeError.badAccept
        }

        var acceptance = Acceptance()
        let protocols = headers[canonicalForm: "Sec-WebSocket-Protocol"]
        if !protocols.isEmpty {
            guard protocols.count == 1, subprotocols.contains(String(protocols[0])) else {
                throw WebSocketHandshakeError(.unofferedSubprotocol, protocols.joined(separator: ", "))
            }
            acceptance.subprotocol = String(protocols[0])
        }

        for element in WebSocketExtensionHeader.parse(headers["Sec-WebSocket-Extensions"]) {
            guard element.name == WebSocketDeflateParameters.extensionName, let deflate else {
                throw WebSocketHandshakeError(.unofferedExtension, element.name)
            }
            guard acceptance.deflate == nil else {
                throw WebSocketHandshakeError(.badExtensionParameters, "permessage-deflate selected twice")
            }
            acceptance.deflate = try deflate.acceptResponse(element)
        }
        return acceptance
    }
}
