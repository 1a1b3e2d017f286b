import FluxWebSocket
import NIOHTTP1
import Testing

@Suite struct WebSocketServerHandshakeTests {
    static let key = "dGhlIHNhbXBsZSBub25jZQ=="

    static func request(
        method: HTTPMethod = .GET,
        version: HTTPVersion = .http1_1,
        removing: [String] = [],
        replacing: [(String, String)] = [],
        adding: [(String, String)] = []
    ) -> HTTPRequestHead {
        var headers: HTTPHeaders = [
            "Host": "server.example.com",
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": key,
            "Sec-WebSocket-Version": "13",
        ]
        for name in removing { headers.remove(name: name) }
        for (name, value) in replacing { headers.replaceOrAdd(name: name, value: value) }
        for (name, value) in adding { headers.add(name: name, value: value) }
        return HTTPRequestHead(version: version, method: method, uri: "/chat", headers: headers)
    }

    static func rejection(_ decision: WebSocketServerHandshake.Decision) -> WebSocketServerHandshake.Rejection? {
        if case .reject(let rejection) = decision { return rejection }
        return nil
    }

    static func acceptance(_ decision: WebSocketServerHandshake.Decision) -> WebSocketServerHandshake.Acceptance? {
        if case .accept(let acceptance) = decision { return acceptance }
        return nil
    }

    @Test func acceptsAValidRequest() throws {
        let acceptance = try #require(Self.acceptance(WebSocketServerHandshake().evaluate(Self.request())))
        #expect(acceptance.headers["Upgrade"] == ["websocket"])
        #expect(acceptance.headers["Connection"] == ["Upgrade"])
        #expect(acceptance.headers["Sec-WebSocket-Accept"] == ["s3pPLMBiTxaQ9kYGzzhZRbK+xOo="])
        #expect(acceptance.subprotocol == nil && acceptance.deflate == nil)
        #expect(!acceptance.headers.contains(name: "Sec-WebSocket-Extensions"))
    }

    @Test func headerValuesAreCaseInsensitiveTokenLists() throws {
        let request = Self.request(replacing: [("Upgrade", "WebSocket"), ("Connection", "keep-alive, UPGRADE")])
        #expect(Self.acceptance(WebSocketServerHandshake().evaluate(request)) != nil)
    }

    @Test func rejectsWithBadRequest() {
        let cases: [HTTPRequestHead] = [
            Self.request(method: .POST),
            Self.request(version: .http1_0),
            Self.request(removing: ["Host"]),
            Self.request(removing: ["Upgrade"]),
            Self.request(replacing: [("Upgrade", "h2c")]),
            Self.request(removing: ["Connection"]),
            Self.request(replacing: [("Connection", "keep-alive")]),
            Self.request(removing: ["Sec-WebSocket-Key"]),
            Self.request(replacing: [("Sec-WebSocket-Key", "not base64!")]),
            Self.request(replacing: [("Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAAAAAA")]),  // 18 bytes
            Self.request(adding: [("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")]),  // two keys
        ]
        for request in cases {
            let rejection = Self.rejection(WebSocketServerHandshake().evaluate(request))
            #expect(rejection?.status == .badRequest, "\(request)")
            #expect(rejection?.reason.isEmpty == false)
        }
    }

    @Test func rejectsOtherVersionsWith426AndTheVersionWeSpeak() {
        for request in [Self.request(replacing: [("Sec-WebSocket-Version", "8")]), Self.request(removing: ["Sec-WebSocket-Version"])] {
            let rejection = Self.rejection(WebSocketServerHandshake().evaluate(request))
            #expect(rejection?.status == .upgradeRequired)
            #expect(rejection?.headers["Sec-WebSocket-Version"] == ["13"])
        }
    }

    @Test func originHook() {
        let handshake = WebSocketServerHandshake(originCheck: { $0 == "https://good.example" })
        #expect(Self.acceptance(handshake.evaluate(Self.request(adding: [("Origin", "https://good.example")]))) != nil)
        #expect(Self.rejection(handshake.evaluate(Self.request(adding: [("Origin", "https://evil.example")])))?.status == .forbidden)
        #expect(Self.rejection(handshake.evaluate(Self.request()))?.status == .forbidden)
    }

    @Test func selectsTheServersPreferredSubprotocolAmongThoseOffered() throws {
        let handshake = WebSocketServerHandshake(subprotocols: ["v2.fluxgate", "v1.fluxgate"])
        let offered = Self.request(adding: [("Sec-WebSocket-Protocol", "chat, v1.fluxgate, v2.fluxgate")])
        let acceptance = try #require(Self.acceptance(handshake.evaluate(offered)))
        #expect(acceptance.subprotocol == "v2.fluxgate")
        #expect(acceptance.headers["Sec-WebSocket-Protocol"] == ["v2.fluxgate"])

        let none = try #require(Self.acceptance(handshake.evaluate(Self.request(adding: [("Sec-WebSocket-Protocol", "chat")]))))
        #expect(none.subprotocol == nil && !none.headers.contains(name: "Sec-WebSocket-Protocol"))
    }

    @Test func acceptsDeflateWhenOfferedAndEnabled() throws {
        let handshake = WebSocketServerHandshake(deflate: WebSocketDeflateOptions(serverNoContextTakeover: true))
        let request = Self.request(adding: [("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits")])
        let acceptance = try #require(Self.acceptance(handshake.evaluate(request)))
        // A bare client_max_window_bits lets us limit the client; at our default of 15 there is nothing to say.
        #expect(acceptance.deflate == WebSocketDeflateParameters(serverNoContextTakeover: true))
        #expect(acceptance.headers["Sec-WebSocket-Extensions"] == ["permessage-deflate; server_no_context_takeover"])
    }

    @Test func declinesDeflateWhenDisabledOrNotOffered() throws {
        let offered = Self.request(adding: [("Sec-WebSocket-Extensions", "permessage-deflate")])
        let disabled = try #require(Self.acceptance(WebSocketServerHandshake().evaluate(offered)))
        #expect(disabled.deflate == nil)
        let enabled = WebSocketServerHandshake(deflate: WebSocketDeflateOptions())
        let notOffered = try #require(Self.acceptance(enabled.evaluate(Self.request(adding: [("Sec-WebSocket-Extensions", "x-webkit-deflate-frame")]))))
        #expect(notOffered.deflate == nil)
    }
}
