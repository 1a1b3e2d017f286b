import NIOHTTP1

/// Cross-origin resource sharing (the Fetch standard's CORS protocol) for the origins the operator allows with
/// `--allow-origin`: a page from such an origin may read the feed, events, streams and health, subscribe through
/// server-sent events, and append, sending its bearer token in `Authorization` (which makes the browser ask first:
/// a preflight `OPTIONS`). The same origins may open the WebSocket push channel (``GatewayRouter/isAllowed(origin:_:)``).
///
/// - A request with an `Origin` that is allowed gets `Access-Control-Allow-Origin` naming it, and the response headers
///   a client needs (`ETag`, `Retry-After`, …) exposed.
/// - A preflight from an allowed origin gets `204` with the methods and headers the gateway accepts, cached by the
///   browser for ``maxAge`` seconds; from any other origin, `403` whose message says how to allow it.
/// - Every answer of a gateway that allows other origins varies by `Origin`, so that no cache hands one origin's
///   answer to another.
///
/// No cookies are involved (tokens travel in `Authorization` or `access_token`), so `Access-Control-Allow-Credentials`
/// is never sent.
struct CrossOriginPolicy: Sendable {
    static let allowedMethods = "GET, HEAD, POST"
    static let allowedHeaders = "Authorization, Content-Type, Accept, Last-Event-ID, If-None-Match"
    static let exposedHeaders = "ETag, Retry-After, WWW-Authenticate, Allow, X-Request-ID"
    /// How long, in seconds, a browser may reuse a preflight's answer.
    static let maxAge = "600"

    /// Whether the gateway serves any origin but its own: then every answer varies by `Origin`.
    let enabled: Bool

    init(configuration: GatewayConfiguration) {
        enabled = !configuration.allowedOrigins.isEmpty
    }

    /// Whether `request` is a CORS preflight: `OPTIONS` with `Origin` and `Access-Control-Request-Method`.
    static func isPreflight(_ request: GatewayRequest) -> Bool {
        request.method == .OPTIONS && request.headers.first(name: "Origin") != nil
            && request.headers.first(name: "Access-Control-Request-Method") != nil
    }

    /// The answer to a preflight from `origin`, which `allowed` says whether the gateway serves.
    static func preflightResponse(origin: String, allowed: Bool) -> GatewayResponse {
        guard allowed else {
            var response = GatewayResponse.error(
                .forbidden, "origin_not_allowed",
                "pages from \(origin.prefix(200)) may not call this gateway; its operator can allow them with --allow-origin \(origin.prefix(200))"
            )
            response.headers.add(name: "Vary", value: "Origin")
            return response
        }
        return GatewayResponse(
            status: .noContent,
            headers: [
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Methods": allowedMethods,
                "Access-Control-Allow-Headers": allowedHeaders,
                "Access-Control-Max-Age": maxAge,
                "Vary": "Origin",
            ]
        )
    }

    /// Adds what a cross-origin caller needs to `response`: `origin` when it is allowed (`nil`: no `Origin`, or not
    /// allowed), and `Vary: Origin` whenever other origins are served at all.
    func decorate(_ response: inout GatewayResponse, allowedOrigin origin: String?) {
        guard response.status != .switchingProtocols else { return }
        if let origin {
            response.headers.replaceOrAdd(name: "Access-Control-Allow-Origin", value: origin)
            response.headers.replaceOrAdd(name: "Access-Control-Expose-Headers", value: Self.exposedHeaders)
        }
        if enabled || origin != nil {
            response.headers.add(name: "Vary", value: "Origin")
        }
    }
}
