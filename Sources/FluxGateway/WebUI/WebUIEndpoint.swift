import NIOCore
import NIOHTTP1

extension GatewayRouter {
    /// `GET /`: the web UI's page; `GET /ui/{name}`: its script, style and the `fluxgate.js` client module.
    ///
    /// Served from memory with `Cache-Control: no-cache` and a strong `ETag`: a browser revalidates each
    /// file and gets a `304` until the gateway serves a different build, so an upgrade is seen at once.
    /// An unknown name is a `404` JSON error, like every other miss of the router.
    func webUI(_ request: GatewayRequest, segments: [String]) -> GatewayResponse {
        // HEAD would need the HTTP handler to send a GET's Content-Length without the body; not yet.
        guard request.method == .GET else { return methodNotAllowed(request, allow: "GET, HEAD") }
        let name: String?
        switch segments.count {
        case 0: name = WebUIAssets.indexName
        case 2: name = segments[1]
        default: name = nil
        }
        let assets = WebUIAssets.embedded
        guard let name, let asset = assets[name] else {
            let path = "/" + segments.joined(separator: "/")
            return .error(.notFound, "not_found", "no web UI file at \(path.prefix(300)); the UI is at /, its files are \(assets.names.map { "/ui/" + $0 }.joined(separator: ", "))")
        }
        return asset.response(to: request)
    }
}

extension WebAsset {
    /// `200` with the file, or `304` when the request's `If-None-Match` names its tag (RFC 9110 §13.1.2).
    func response(to request: GatewayRequest) -> GatewayResponse {
        var headers: HTTPHeaders = [
            "ETag": etag,
            "Cache-Control": "no-cache",
            "X-Content-Type-Options": "nosniff",
        ]
        if contentType.hasPrefix("text/html") {
            // Everything the page loads or connects to is this gateway's (no CDN); `'self'` covers ws:/wss:.
            headers.add(name: "Content-Security-Policy", value: "default-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
            headers.add(name: "Referrer-Policy", value: "no-referrer")
        }
        let candidates = request.headers[canonicalForm: "If-None-Match"].map { $0.trimmingSpaces() }
        if candidates.contains(where: { $0 == "*" || $0 == etag || $0 == "W/" + etag }) {
            return GatewayResponse(status: .notModified, headers: headers)
        }
        headers.add(name: "Content-Type", value: contentType)
        return GatewayResponse(status: .ok, headers: headers, body: body)
    }
}
