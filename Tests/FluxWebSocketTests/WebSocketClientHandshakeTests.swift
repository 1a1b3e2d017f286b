import FluxWebSocket
import NIOHTTP1
import Testing

@Suite struct WebSocketClientHandshakeTests {
    static let key = "dGhlIHNhbXBsZSBub25jZQ=="

    static func response(
        status: HTTPResponseStatus = .switchingProtocols,
        replacing: [(String, String)] = [],
        adding: [(String, String)] = []
    ) -> HTTPResponseHead {
        var headers: HTTPHeaders = [
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Accept": "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
        ]
        for (name, value) in replacing { headers.replaceOrAdd(name: name, value: value) }
        for (name, value) in adding { headers.add(name: name, value: value) }
        return HTTPResponseHead(version: .http1_1, status: status, headers: headers)
    }

    @Test func buildsTheRequest() {
        let handshake = WebSocketClientHandshake(subprotocols: ["chat", "superchat"], deflate: WebSocketDeflateOptions(), key: Self.key)
        let head = handshake.requestHead(host: "server.example.com:8080", path: "/chat?x=1")
        #expect(head.method == .GET && head.version == .http1_1 && head.uri == "/chat?x=1")
        #expect(head.headers["Host"] == ["server.example.com:8080"])
        #expect(head.headers["Sec-WebSocket-Key"] == [Self.key])
        #expect(head.headers["Sec-WebSocket-Version"] == ["13"])
        #expect(head.headers["Sec-WebSocket-Protocol"] == ["chat, superchat"])
        #expect(head.headers["Sec-WebSocket-Extensions"] == ["permessage-deflate; client_max_window_bits"])
    }

    @Test func ourRequestPassesOurServer() {
        let handshake = WebSocketClientHandshake()
        guard case .accept(let acceptance) = WebSocketServerHandshake().evaluate(handshake.requestHead(host: "h", path: "/")) else {
            Issue.record("server rejected our client's request")
            return
        }
        let response = HTTPResponseHead(version: .http1_1, status: .switchingProtocols, headers: acceptance.headers)
        #expect(throws: Never.self) { try handshake.validate(response) }
    }

    @Test func acceptsAValidResponse() throws {
        let acceptance = try WebSocketClientHandshake(key: Self.key).validate(Self.response(replacing: [("Upgrade", "WebSocket"), ("Connection", "upgrade")]))
        #expect(acceptance.subprotocol == nil && acceptance.deflate == nil)
    }

    @Test func rejectsBadResponses() {
        let handshake = WebSocketClientHandshake(subprotocols: ["chat"], key: Self.key)
        #expect(throws: WebSocketHandshakeError.unexpectedStatus) { try handshake.validate(Self.response(status: .ok)) }
        #expect(throws: WebSocketHandshakeError.missingUpgrade) { try handshake.validate(Self.response(replacing: [("Upgrade", "h2c")])) }
        #expect(throws: WebSocketHandshakeError.missingConnectionUpgrade) {
            try handshake.validate(Self.response(replacing: [("Connection", "close")]))
        }
        #expect(throws: WebSocketHandshakeError.badAccept) {
            try handshake.validate(Self.response(replacing: [("Sec-WebSocket-Accept", "AAAAAAAAAAAAAAAAAAAAAAAAAAA=")]))
        }
        #expect(throws: WebSocketHandshakeError.unofferedSubprotocol) {
            try handshake.validate(Self.response(adding: [("Sec-WebSocket-Protocol", "other")]))
        }
        #expect(throws: WebSocketHandshakeError.unofferedExtension) {
            try handshake.validate(Self.response(adding: [("Sec-WebSocket-Extensions", "permessage-deflate")]))
        }
    }

    @Test func acceptsTheSubprotocolWeOffered() throws {
        let acceptance = try WebSocketClientHandshake(subprotocols: ["chat"], key: Self.key).validate(Self.response(adding: [("Sec-WebSocket-Protocol", "chat")]))
        #expect(acceptance.subprotocol == "chat")
    }

    @Test func acceptsDeflateResponses() throws {
        let handshake = WebSocketClientHandshake(deflate: WebSocketDeflateOptions(), key: Self.key)
        let acceptance = try handshake.validate(Self.response(adding: [("Sec-WebSocket-Extensions", "permessage-deflate; server_no_context_takeover; client_max_window_bits=10")]))
        #expect(acceptance.deflate == WebSocketDeflateParameters(serverNoContextTakeover: true, clientMaxWindowBits: 10))
    }

    @Test func rejectsDeflateResponsesOutsideOurOffer() {
        let handshake = WebSocketClientHandshake(deflate: WebSocketDeflateOptions(serverNoContextTakeover: true, serverMaxWindowBits: 10), key: Self.key)
        for value in [
            "permessage-deflate; server_max_window_bits=10",  // no server_no_context_takeover
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=12",  // larger than offered
            "permessage-deflate; server_no_context_takeover",  // window not answered
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; client_max_window_bits",  // bare in a response
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; foo=1",  // unknown
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=+10",  // signed (found by fuzzing)
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover; server_max_window_bits=10",  // repeated
        ] {
            #expect(throws: WebSocketHandshakeError.badExtensionParameters, "\(value)") {
                try handshake.validate(Self.response(adding: [("Sec-WebSocket-Extensions", value)]))
            }
        }
    }
}
