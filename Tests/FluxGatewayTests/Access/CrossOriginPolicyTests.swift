import FluxCore
import FluxGateway
import Logging
import NIOCore
import NIOHTTP1
import Testing

/// CORS for the origins of `--allow-origin`: their pages may read, subscribe through server-sent events and append
/// (a preflight first, since they send `Authorization` and JSON); other origins get nothing a browser lets them read.
@Suite struct CrossOriginPolicyTests {
    static let app = "https://app.example.com"

    private func router(allowing origins: Set<String>, store: any EventStore = InMemoryEventStore()) -> GatewayRouter {
        var logger = Logger(label: "test.cors")
        logger.logLevel = .critical
        let hub = SubscriptionHub(store: store, logger: logger)
        return GatewayRouter(store: store, configuration: GatewayConfiguration(allowedOrigins: origins, logger: logger), hub: hub)
    }

    private func request(_ method: HTTPMethod, _ uri: String, _ headers: [(String, String)], body: String = "") -> GatewayRequest {
        GatewayRequest(method: method, uri: uri, headers: HTTPHeaders([("Host", "feed.example.com")] + headers), body: ByteBuffer(string: body))
    }

    @Test func aPreflightFromAnAllowedOriginIsAnsweredWithWhatTheGatewayAccepts() async {
        let response = await router(allowing: [Self.app]).respond(to: request(.OPTIONS, "/streams/acc-1", [
            ("Origin", Self.app), ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", "authorization, content-type"),
        ]))
        #expect(response.status == .noContent)
        #expect(response.headers.first(name: "Access-Control-Allow-Origin") == Self.app)
        #expect(response.headers.first(name: "Access-Control-Allow-Methods") == "GET, HEAD, POST")
        let headers = Set((response.headers.first(name: "Access-Control-Allow-Headers") ?? "").lowercased().split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
        #expect(headers.isSuperset(of: ["authorization", "content-type", "last-event-id", "if-none-match"]))
        #expect(response.headers.first(name: "Access-Control-Max-Age") == "600")
        #expect(response.headers[canonicalForm: "Vary"].contains("Origin"))
        #expect(response.headers.first(name: "Access-Control-Allow-Credentials") == nil, "tokens, not cookies")
    }

    @Test func aPreflightFromAnotherOriginIs403SayingHowToAllowIt() async {
        for allowed: Set<String> in [[], [Self.app]] {
            let response = await router(allowing: allowed).respond(to: request(.OPTIONS, "/events", [
                ("Origin", "https://evil.example"), ("Access-Control-Request-Method", "GET"),
            ]))
            #expect(response.status == .forbidden)
            #expect(response.headers.first(name: "Access-Control-Allow-Origin") == nil)
            let body = String(buffer: response.body)
            #expect(body.contains(#""error":"origin_not_allowed""#))
            #expect(body.contains("--allow-origin https://evil.example"))
        }
    }

    @Test func answersToAnAllowedOriginNameItAndExposeTheHeadersClientsRead() async throws {
        let store = InMemoryEventStore()
        let router = router(allowing: [Self.app], store: store)
        let append = await router.respond(to: request(.POST, "/streams/acc-1", [("Origin", Self.app), ("Content-Type", "application/json")],
            body: #"{"aggregate_name": "Account", "expected_version": -1, "events": [{"event_type": "t", "payload": {}}]}"#))
        #expect(append.status == .created)
        #expect(append.headers.first(name: "Access-Control-Allow-Origin") == Self.app)
        for uri in ["/events?after=0", "/events?offset=0", "/health", "/streams/acc-1", "/events/nope"] {
            let response = await router.respond(to: request(.GET, uri, [("Origin", Self.app)]))
            #expect(response.headers.first(name: "Access-Control-Allow-Origin") == Self.app, "\(uri)")
            #expect(response.headers.first(name: "Access-Control-Expose-Headers")?.contains("ETag") == true, "\(uri)")
            #expect(response.headers[canonicalForm: "Vary"].contains("Origin"), "\(uri)")
        }
        // Errors too: a page must be able to read why it was refused.
        let bad = await router.respond(to: request(.GET, "/events?after=-5", [("Origin", Self.app)]))
        #expect(bad.status == .badRequest)
        #expect(bad.headers.first(name: "Access-Control-Allow-Origin") == Self.app)
        // The server-sent events stream is a response like the others.
        let events = await router.respond(to: request(.GET, "/events/subscribe?after=0", [("Origin", Self.app), ("Accept", "text/event-stream")]))
        #expect(events.headers.first(name: "Content-Type")?.hasPrefix("text/event-stream") == true)
        #expect(events.headers.first(name: "Access-Control-Allow-Origin") == Self.app)
    }

    @Test func anyOriginWithAStar() async {
        let response = await router(allowing: ["*"]).respond(to: request(.GET, "/health", [("Origin", "http://localhost:3000")]))
        #expect(response.headers.first(name: "Access-Control-Allow-Origin") == "http://localhost:3000")
    }

    @Test func anotherOriginGetsNoCORSHeadersAndEveryAnswerVariesByOrigin() async {
        let router = router(allowing: [Self.app])
        let foreign = await router.respond(to: request(.GET, "/events?after=0", [("Origin", "https://evil.example")]))
        #expect(foreign.status == .ok, "answered; the browser keeps it from the page")
        #expect(foreign.headers.first(name: "Access-Control-Allow-Origin") == nil)
        // Without Origin (curl, a cache filling itself): still Vary, so a cache never hands it to a page of an origin.
        let plain = await router.respond(to: request(.GET, "/events?after=0", []))
        #expect(plain.headers.first(name: "Access-Control-Allow-Origin") == nil)
        #expect(plain.headers[canonicalForm: "Vary"].contains("Origin"))
    }

    @Test func aGatewayServingOnlyItsOwnOriginAddsNothing() async {
        let plain = await router(allowing: []).respond(to: request(.GET, "/events?after=0", []))
        #expect(plain.headers.first(name: "Vary") == nil)
        #expect(plain.headers.first(name: "Access-Control-Allow-Origin") == nil)
        // An OPTIONS that is not a preflight is an ordinary request to a route that does not take it.
        let options = await router(allowing: [Self.app]).respond(to: request(.OPTIONS, "/events", []))
        #expect(options.status == .methodNotAllowed)
    }
}
