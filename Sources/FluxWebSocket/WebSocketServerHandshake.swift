import NIOHTTP1

/// The server side of the opening handshake (RFC 6455 §4.2): validates a request head and answers with the
/// `101 Switching Protocols` headers or a rejection.
///
/// Plugs into an NIOHTTP1 pipeline: give it the `HTTPRequestHead` the HTTP decoder produced.
public struct WebSocketServerHandshake: Sendable {
    /// Decides whether an `Origin` (RFC 6455 §4.2.1 point 7, §10.2) may connect; `nil` when the request has none.
    public typealias OriginCheck = @Sendable (_ origin: String?) -> Bool

    /// Subprotocols this server speaks, in order of preference (RFC 6455 §4.2.2, point 5.5.4).
    public var subprotocols: [String]
    /// Called with the request's `Origin`; returning `false` rejects with 403. `nil` accepts any origin.
    public var originCheck: OriginCheck?
    /// permessage-deflate settings if the server accepts it when offered (RFC 7692); `nil` declines it.
    public var deflate: WebSocketDeflateOptions?

    /// Creates a handshake policy.
    public init(subprotocols: [String] = [], originCheck: OriginCheck? = nil, deflate: WebSocketDeflateOptions? = nil) {
        self.subprotocols = subprotocols
        self.originCheck = originCheck
        self.deflate = deflate
    }

    /// The accepted handshake: the response headers to send with status 101 and what was negotiated.
    public struct Acceptance: Sendable {
        /// `Upgrade`, `Connection`, `Sec-WebSocket-Accept` and, when negotiated, `Sec-WebSocket-Protocol`
        /// and `Sec-WebSocket-Extensions` (RFC 6455 §4.2.2, point 5).
        public var headers: HTTPHeaders
        /// The subprotocol selected, if any.
        public var subprotocol: String?
        /// The permessage-deflate parameters agreed, if any (RFC 7692 §7).
        public var deflate: WebSocketDeflateParameters?
    }

    /// A refused handshake: answer with this status and headers and do not upgrade (RFC 6455 §4.2.2, point 4).
    public struct Rejection: Sendable, Equatable {
        /// 400 for a malformed request, 403 for a refused origin, 426 for an unsupported version.
        public var status: HTTPResponseStatus
        /// A human-readable reason, suitable for the response body and logs.
        public var reason: String
        /// Extra headers; for 426, `Sec-WebSocket-Version: 13` (RFC 6455 §4.4).
        public var headers: HTTPHeaders
    }

    /// The outcome of ``evaluate(_:)``.
    public enum Decision: Sendable {
        /// Upgrade the connection.
        case accept(Acceptance)
        /// Refuse it with an HTTP error response.
        case reject(Rejection)
    }

    /// Validates a client's opening handshake (RFC 6455 §4.2.1) and builds the server's answer (§4.2.2).
    public func evaluate(_ head: HTTPRequestHead) -> Decision {
        let headers = head.headers
        func reject(_ reason: String, status: HTTPResponseStatus = .badRequest, headers: HTTPHeaders = [:]) -> Decision {
            .reject(Rejection(status: status, reason: reason, headers: headers))
        }

        guard head.method == .GET else {
            return reject("a WebSocket handshake must use GET, not \(head.method.rawValue) (RFC 6455 §4.2.1)")
        }
        guard head.version.major > 1 || (head.version.major == 1 && head.version.minor >= 1) else {
            return reject("a WebSocket handshake needs HTTP/1.1 or later (RFC 6455 §4.2.1)")
        }
        guard headers.contains(name: "Host") else {
            return reject("the request has no Host header (RFC 6455 §4.2.1)")
        }
        guard headers.containsToken("websocket", inHeader: "Upgrade") else {
            return reject("the request has no 'Upgrade: websocket' header (RFC 6455 §4.2.1)")
        }
        guard headers.containsToken("upgrade", inHeader: "Connection") else {
            return reject("the request's Connection header has no 'Upgrade' token (RFC 6455 §4.2.1)")
        }
        let versions = headers[canonicalForm: "Sec-WebSocket-Version"]
        guard versions.count == 1, versions[0] == Substring(WebSocketHandshake.version) else {
            return reject(
                "unsupported Sec-WebSocket-Version \(versions.joined(separator: ", ")); this server speaks 13 (RFC 6455 §4.4)",
                status: .upgradeRequired,
                headers: ["Sec-WebSocket-Version": WebSocketHandshake.version]
            )
        }
        let keys = headers["Sec-WebSocket-Key"]
        guard keys.count == 1, let key = keys.first.map({ String($0.trimmingASCIISpaces()) }),
            WebSocketHandshake.isValidKey(key)
        else {
            return reject("Sec-WebSocket-Key must be one base64 value of 16 bytes (RFC 6455 §4.1, §11.3.1)")
        }
        if let originCheck, !originCheck(headers.first(name: "Origin")) {
            return reject("origin not allowed", status: .forbidden)
        }

        var response: HTTPHeaders = [
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Accept": WebSocketHandshake.acceptValue(forKey: key),
        ]
        let offered = headers[canonicalForm: "Sec-WebSocket-Protocol"].map { String($0) }
        let subprotocol = subprotocols.first { offered.contains($0) }
        if let subprotocol {
            response.add(name: "Sec-WebSocket-Protocol", value: subprotocol)
        }
        var agreed: WebSocketDeflateParameters? = nil
        if let deflate {
            let offers = WebSocketExtensionHeader.parse(headers["Sec-WebSocket-Extensions"])
            if let parameters = deflate.negotiateAsServer(offers: offers) {
                agreed = parameters
                response.add(name: "Sec-WebSocket-Extensions", value: parameters.headerValue)
            }
        }
        return .accept(Acceptance(headers: response, subprotocol: subprotocol, deflate: agreed))
    }
}

extension StringProtocol {
    /// The string without leading and trailing spaces and tabs (HTTP optional whitespace, RFC 7230 §3.2.3).
    func trimmingASCIISpaces() -> SubSequence {
        var start = startIndex
        var end = endIndex
        while start < end, self[start] == " " || self[start] == "\t" { start = index(after: start) }
        while end > start, self[index(before: end)] == " " || self[index(before: end)] == "\t" { end = index(before: end) }
        return self[start..<end]
    }
}
