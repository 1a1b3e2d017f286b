import FluxWire
import NIOCore
import NIOHTTP1

/// One complete HTTP request as the router sees it: head, decoded path and query, and the whole body.
public struct GatewayRequest: Sendable {
    public var method: HTTPMethod
    public var version: HTTPVersion
    /// The request target as sent (path and query).
    public var uri: String
    public var headers: HTTPHeaders
    public var body: ByteBuffer
    /// The client's IP address (`nil` when unknown, e.g. in tests that call the router directly).
    public var remoteAddress: String?
    /// The request's id in logs and in the `X-Request-ID` response header: the client's own (`X-Request-ID`, when it
    /// is short and printable) or `<connection>-<request number>`.
    public var requestID: String?
    /// The decoded path segments (`/events/abc` → `["events", "abc"]`); `nil` when a segment's escape is malformed.
    public let pathSegments: [String]?
    /// The decoded query items in order; `nil` when an escape is malformed.
    public let query: [(name: String, value: String)]?

    public init(method: HTTPMethod, version: HTTPVersion = .http1_1, uri: String, headers: HTTPHeaders, body: ByteBuffer) {
        self.method = method
        self.version = version
        self.uri = uri
        self.headers = headers
        self.body = body
        let withoutFragment = uri.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)[0]
        let parts = withoutFragment.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        var segments: [String]? = []
        for raw in parts[0].split(separator: "/", omittingEmptySubsequences: true) {
            guard let segment = URLEncoding.decode(raw, plusIsSpace: false) else {
                segments = nil
                break
            }
            segments?.append(segment)
        }
        self.pathSegments = segments
        self.query = parts.count > 1 ? URLEncoding.parseQuery(parts[1]) : []
    }

    /// Every value given for a query parameter.
    public func queryValues(_ name: String) -> [String] {
        (query ?? []).filter { $0.name == name }.map(\.value)
    }

    /// The last value given for a query parameter.
    public func queryValue(_ name: String) -> String? {
        (query ?? []).last(where: { $0.name == name })?.value
    }
}

/// A complete HTTP response.
public struct GatewayResponse: Sendable {
    public var status: HTTPResponseStatus
    public var headers: HTTPHeaders
    public var body: ByteBuffer
    /// A body streamed after the head (server-sent events); the connection closes when it returns.
    public var stream: (@Sendable (BoundedOutboundWriter) async throws -> Void)?
    /// Switch the connection to the WebSocket push channel after a `101` with these headers.
    var upgrade: PushChannelUpgrade?

    public init(status: HTTPResponseStatus, headers: HTTPHeaders = [:], body: ByteBuffer = ByteBuffer()) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A streamed response: the head now, then whatever `stream` writes, until it returns or the client leaves.
    static func streaming(
        headers: HTTPHeaders, _ stream: @escaping @Sendable (BoundedOutboundWriter) async throws -> Void
    ) -> GatewayResponse {
        var response = GatewayResponse(status: .ok, headers: headers)
        response.stream = stream
        return response
    }

    /// A JSON response.
    static func json(_ status: HTTPResponseStatus, _ body: ByteBuffer, headers: HTTPHeaders = [:]) -> GatewayResponse {
        var headers = headers
        headers.replaceOrAdd(name: "Content-Type", value: "application/json")
        return GatewayResponse(status: status, headers: headers, body: body)
    }

    /// A JSON error: `{"error": code, "message": message}` plus any extra integer fields.
    static func error(
        _ status: HTTPResponseStatus, _ code: String, _ message: String,
        extra: [(StaticString, Int64)] = [], headers: HTTPHeaders = [:]
    ) -> GatewayResponse {
        var json = JSONWriter(buffer: ByteBuffer())
        json.raw("{")
        json.key("error"); json.string(code)
        json.raw(",")
        json.key("message"); json.string(message)
        for (key, value) in extra {
            json.raw(",")
            json.key(key); json.integer(value)
        }
        json.raw("}")
        return .json(status, json.buffer, headers: headers)
    }
}
