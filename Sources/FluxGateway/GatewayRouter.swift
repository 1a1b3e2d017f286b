import FluxCore
import FluxWire
import NIOCore
import NIOHTTP1

/// Maps requests to endpoints. Pure request → response over a store: no channel or socket in sight, so it
/// is tested directly as well as through the server.
public struct GatewayRouter: Sendable {
    let store: any EventStore
    let configuration: GatewayConfiguration
    /// The live fan-out; `nil` serves no subscriptions.
    let hub: SubscriptionHub?
    let subscriptionSlots: SubscriptionSlots
    /// Compresses each push-channel batch once for every WebSocket subscriber that negotiated permessage-deflate
    /// (the hub shares batches; each transport encodes them its own way).
    let pushCompressor = SharedDeflateCompressor()
    let appendLimiter: AppendRateLimiter?
    /// Where requests are counted and timed; rendered at `/metrics`.
    let metrics: GatewayMetrics
    /// Feed pages, by bytes as well as by count.
    let feedPages: PageSizer
    /// Catch-up pages of subscribers (many may catch up at once: a quarter of a feed page's bytes each).
    let subscriptionPages: PageSizer
    /// CORS for the origins of `--allow-origin` (Access/CrossOriginPolicy.swift).
    let crossOrigin: CrossOriginPolicy
    /// The store's consumer groups (Groups/GroupEndpoints.swift); `nil` when the store keeps none.
    let groups: ConsumerGroupRegistry?
    /// The store's webhook sinks (Sinks/SinkEndpoints.swift); `nil` when the store keeps none.
    let sinks: WebhookSinkRegistry?

    /// `metrics` defaults to the hub's, else a new set.
    public init(
        store: any EventStore, configuration: GatewayConfiguration, hub: SubscriptionHub? = nil, metrics: GatewayMetrics? = nil
    ) {
        self.store = store
        self.configuration = configuration
        self.hub = hub
        self.subscriptionSlots = SubscriptionSlots(maximum: configuration.maxSubscriptions)
        self.appendLimiter = configuration.appendRate.map { AppendRateLimiter(rate: $0, burst: configuration.appendBurst ?? $0) }
        let metrics = metrics ?? hub?.metrics ?? GatewayMetrics()
        self.metrics = metrics
        self.feedPages = PageSizer(byteBudget: configuration.maxPageBytes)
        self.subscriptionPages = PageSizer(byteBudget: max(1, configuration.maxPageBytes / 4))
        self.crossOrigin = CrossOriginPolicy(configuration: configuration)
        let base = (store as? MeteredEventStore)?.base ?? store
        let groups = (base as? any EventStore & ConsumerGroupStore).map { ConsumerGroupRegistry(store: $0, logger: configuration.logger, metrics: metrics) }
        self.groups = groups
        if let groups, let sinkStore = base as? any WebhookSinkStore {
            self.sinks = WebhookSinkRegistry(
                store: sinkStore, groups: groups, seal: configuration.webhookSecretSeal, logger: configuration.logger, metrics: metrics)
        } else {
            self.sinks = nil
        }
    }

    /// Answers one request and counts it in `metrics` (route template, method, status, latency). Never throws:
    /// every failure becomes a JSON error response. `countedAs`: the method to count when it is not the request's
    /// (a HEAD request is answered as its GET).
    public func respond(to request: GatewayRequest, countedAs method: HTTPMethod? = nil) async -> GatewayResponse {
        let started = ContinuousClock.now
        let origin = request.headers.first(name: "Origin")
        let allowedOrigin = origin.flatMap { isAllowed(origin: $0, request) ? $0 : nil }
        var response: GatewayResponse
        if let origin, CrossOriginPolicy.isPreflight(request) {
            response = CrossOriginPolicy.preflightResponse(origin: origin, allowed: allowedOrigin != nil)
        } else {
            response = await dispatch(request)
            crossOrigin.decorate(&response, allowedOrigin: allowedOrigin)
        }
        metrics.recordRequest(
            route: HTTPRoute(request), method: method ?? request.method, status: response.status, duration: ContinuousClock.now - started)
        return response
    }

    /// Whether a request is answered on its connection's event loop (`EventLoopTaskExecutor`) rather than on the
    /// cooperative pool: only those that are cheap and bounded whatever the caller asks, the original consumer's
    /// requests (a GET of one event; a page `?offset=N` of at most 32 events, without filters) and `/health`. Bigger
    /// pages, filters, long-polls, appends, streams and the UI run on the pool, so that no request can hold an event
    /// loop, and the other connections' I/O on it, for long.
    static func answersOnEventLoop(_ request: GatewayRequest) -> Bool {
        guard request.method == .GET, let segments = request.pathSegments, let query = request.query else { return false }
        switch (segments.first, segments.count) {
        case ("health", 1):
            return true
        case ("events", 2):
            return segments[1] != "subscribe"
        case ("events", 1):
            return query.contains { $0.name == "offset" }
                && query.allSatisfy { parameter in
                    switch parameter.name {
                    case "offset": return true
                    case "limit": return Int(parameter.value).map { (1...smallLegacyPage).contains($0) } ?? false
                    default: return false
                    }
                }
        default:
            return false
        }
    }

    /// The largest `?offset=` page answered on the event loop (the original's pages are 20).
    static let smallLegacyPage = 32

    /// Finds the endpoint and answers. Never throws: every failure becomes a JSON error response.
    func dispatch(_ request: GatewayRequest) async -> GatewayResponse {
        guard let segments = request.pathSegments else {
            return .error(.badRequest, "bad_request", "the path has a malformed percent-escape")
        }
        guard request.query != nil else {
            return .error(.badRequest, "bad_request", "the query string has a malformed percent-escape")
        }
        do {
            switch (segments.first, segments.count) {
            case ("events", 1):
                guard request.method == .GET else { return methodNotAllowed(request, allow: "GET, HEAD") }
                return try await feed(request, grant: authorize(request, for: .read))
            case ("events", 2) where segments[1] == "subscribe":
                guard request.method == .GET else { return methodNotAllowed(request, allow: "GET, HEAD") }
                return try await subscribe(request, grant: authorize(request, for: .read))
            case ("events", 2):
                guard request.method == .GET else { return methodNotAllowed(request, allow: "GET, HEAD") }
                return try await singleEvent(request, id: segments[1], grant: authorize(request, for: .read))
            case ("streams", 1):
                guard request.method == .GET else { return methodNotAllowed(request, allow: "GET, HEAD") }
                return try await streamList(request, grant: authorize(request, for: .read))  // StreamListEndpoint.swift
            case ("streams", 2):
                switch request.method {
                case .POST: return try await append(request, aggregateID: segments[1], grant: authorize(request, for: .write))
                case .GET: return try await stream(request, aggregateID: segments[1], grant: authorize(request, for: .read))
                default: return methodNotAllowed(request, allow: "GET, HEAD, POST")
                }
            case ("health", 1):
                guard request.method == .GET else { return methodNotAllowed(request, allow: "GET, HEAD") }
                return try await health()
            case ("groups", _):
                return try await groupsEndpoint(request, segments: segments)  // Groups/GroupEndpoints.swift
            case ("sinks", _):
                return try await sinksEndpoint(request, segments: segments)  // Sinks/SinkEndpoints.swift
            case ("metrics", 1):
                guard request.method == .GET else { return methodNotAllowed(request, allow: "GET, HEAD") }
                _ = try await authorize(request, for: .metrics)
                return await metricsExposition()  // Metrics/MetricsEndpoint.swift
            case (nil, 0), ("ui", _):
                return webUI(request, segments: segments)  // the web UI: WebUI/WebUIEndpoint.swift
            default:
                return .error(.notFound, "not_found", "no endpoint at \(request.method) /\(segments.joined(separator: "/")); see /health, /metrics, /events, /streams, /streams/{aggregate_id}, or the web UI at /")
            }
        } catch let denied as AccessDenied {
            return denied.response
        } catch let error as StoreError {
            return storeErrorResponse(error)
        } catch let error as BadRequest {
            return .error(.badRequest, "bad_request", error.message)
        } catch is CancellationError {
            return .error(.serviceUnavailable, "unavailable", "the server is shutting down; retry")
        } catch {
            // The error's text is for the operator's log, not for the client (it may name files, queries, internals).
            configuration.logger.error("request failed", metadata: ["uri": "\(request.redactedURI)", "request": "\(request.requestID ?? "-")", "error": "\(error)"])
            return .error(
                .internalServerError, "internal",
                "the request failed inside the server; the server's log has the cause under request id \(request.requestID ?? "-")"
            )
        }
    }

    /// `GET /events/subscribe`: the WebSocket push channel, or server-sent events when asked for.
    func subscribe(_ request: GatewayRequest, grant: AccessGrant) async throws -> GatewayResponse {
        let accept = request.headers[canonicalForm: "Accept"].map { $0.lowercased() }
        if accept.contains(where: { $0.hasPrefix("text/event-stream") }) {
            return try await serverSentEvents(request, grant: grant)
        }
        if request.headers.first(name: "Upgrade")?.lowercased() == "websocket" {
            return try await webSocketSubscription(request, grant: grant)
        }
        _ = try SubscriptionQuery(request)  // a bad query is a 400 before anything else
        return .error(.badRequest, "bad_request", "subscribe with a WebSocket upgrade or with Accept: text/event-stream; or poll /events?after=…&wait=…")
    }

    func methodNotAllowed(_ request: GatewayRequest, allow: String) -> GatewayResponse {
        .error(.methodNotAllowed, "method_not_allowed", "\(request.method) is not allowed here; use \(allow)", headers: ["Allow": allow])
    }

    func storeErrorResponse(_ error: StoreError) -> GatewayResponse {
        switch error.code {
        case .conflict:
            // No current_version when the caller may not read the stream (AppendEndpoint hides it).
            return .error(.conflict, "conflict", error.message, extra: error.currentVersion.map { version -> [(StaticString, Int64)] in [("current_version", version)] } ?? [])
        case .duplicateEventID:
            return .error(.conflict, "duplicate_event_id", error.message)
        case .aggregateNameMismatch:
            return .error(.conflict, "aggregate_name_mismatch", error.message)
        case .invalidAppend, .invalidDefinition:
            return .error(.badRequest, "bad_request", error.message)
        case .notFound:
            return .error(.notFound, "not_found", error.message)
        default:
            configuration.logger.error("store failed", metadata: ["error": "\(error)"])
            return .error(.serviceUnavailable, "store_unavailable", error.message, headers: ["Retry-After": "1"])
        }
    }

    func health() async throws -> GatewayResponse {
        let head = try await store.head()
        var json = JSONWriter(buffer: ByteBuffer())
        json.raw("{")
        json.key("status"); json.string("ok")
        json.raw(",")
        json.key("head"); json.integer(head.rawValue)
        json.raw(",")
        json.key("epoch"); json.string(store.epoch.rawValue)
        json.raw("}")
        return .json(.ok, json.buffer, headers: ["Cache-Control": "no-store"])
    }

    /// The base URL for envelope `url`s: configured, else forwarded by a trusted proxy, else the `Host` header
    /// (`https` when serving TLS). `X-Forwarded-*` from a client that is not a trusted proxy are ignored.
    func baseURL(for request: GatewayRequest) -> String {
        let base = unauthenticatedBaseURL(for: request)
        // A caller that authenticated with credentials in its URL (Basic) gets them back in the URLs it is handed,
        // so that a client that follows them (the original flux consumer fetches every entry's `url`) sends them
        // again. Such pages are `Cache-Control: private`: no shared cache keeps them.
        guard configuration.accessControl != nil, let credentials = request.basicCredentials,
            let schemeEnd = base.range(of: "://")
        else { return base }
        let userinfo = URLEncoding.encodeUserinfo(credentials.user) + ":" + URLEncoding.encodeUserinfo(credentials.password) + "@"
        return String(base[..<schemeEnd.upperBound]) + userinfo + String(base[schemeEnd.upperBound...])
    }

    private func unauthenticatedBaseURL(for request: GatewayRequest) -> String {
        if let configured = configuration.publicURL { return configured }
        let trusted = request.remoteAddress.map { configuration.trustedProxies.contains($0) } ?? false
        func forwarded(_ name: String) -> String? {
            guard trusted else { return nil }
            return request.headers.first(name: name).flatMap { $0.split(separator: ",").first }.map { $0.trimmingSpaces() }
        }
        let host = forwarded("X-Forwarded-Host") ?? request.headers.first(name: "Host") ?? "\(configuration.host):\(configuration.port)"
        let scheme = forwarded("X-Forwarded-Proto").flatMap { $0 == "https" || $0 == "http" ? $0 : nil } ?? (configuration.tls == nil ? "http" : "https")
        return "\(scheme)://\(host)"
    }
}

/// A request parameter or body that cannot be used; answered with `400`.
struct BadRequest: Error {
    var message: String
    init(_ message: String) { self.message = message }
}

extension Substring {
    func trimmingSpaces() -> String {
        String(self.drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed())
    }
}

extension GatewayRequest {
    /// An integer query parameter within bounds; `nil` when absent.
    func integerParameter(_ name: String, minimum: Int64, maximum: Int64 = .max) throws(BadRequest) -> Int64? {
        guard let text = queryValue(name) else { return nil }
        guard let value = Int64(text), text.first != "+" else {
            throw BadRequest("\(name) must be an integer, got \"\(text.prefix(40))\"")
        }
        guard value >= minimum else { throw BadRequest("\(name) must be at least \(minimum), got \(value)") }
        guard value <= maximum else { throw BadRequest("\(name) must be at most \(maximum), got \(value)") }
        return value
    }

    /// A boolean query parameter (`true`/`false`/`1`/`0`); `nil` when absent.
    func booleanParameter(_ name: String) throws(BadRequest) -> Bool? {
        guard let text = queryValue(name) else { return nil }
        switch text {
        case "true", "1": return true
        case "false", "0": return false
        default: throw BadRequest("\(name) must be true or false, got \"\(text.prefix(40))\"")
        }
    }
}
