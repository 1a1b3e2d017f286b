import Logging

/// How a gateway serves: where it listens and its limits.
public struct GatewayConfiguration: Sendable {
    /// The address to bind (`127.0.0.1` by default: loopback only).
    public var host: String
    /// The port to bind; `0` picks a free one (see `GatewayServer.localPort`).
    public var port: Int
    /// The base URL written into each envelope's `url` (e.g. `https://feed.example.com`); when `nil`, it is
    /// taken from the request's `X-Forwarded-Proto`/`X-Forwarded-Host` when it comes from a trusted proxy, else
    /// from its `Host` header. Set it on a gateway that faces the internet.
    public var publicURL: String?
    /// Client addresses (`127.0.0.1`, `::1`) of reverse proxies whose `X-Forwarded-Proto`/`X-Forwarded-Host`
    /// are believed. From anyone else those headers are ignored: a client could otherwise make envelope URLs,
    /// cached pages and the WebSocket origin check point at a host of its choosing.
    public var trustedProxies: Set<String> = []
    /// The largest request body accepted; larger bodies get `413` (1 MiB by default).
    public var maxRequestBodySize: Int
    /// The default and the largest `limit` of a feed page.
    public var defaultPageSize: Int
    public var maxPageSize: Int
    /// The longest `wait` of a long-poll, in seconds.
    public var maxWaitSeconds: Int
    /// Events per page when a subscriber catches up from the store.
    public var subscriptionPageSize: Int
    /// About how many bytes of events one page may hold — a feed response, a catch-up frame, a live batch —
    /// whatever `limit` or the page size says (1 MiB by default; at least one event is always sent). Large events
    /// make pages of fewer events, which continue (`next`) like full ones.
    public var maxPageBytes: Int = 1 << 20
    /// Outbound bytes a subscriber may have pending before it falls behind and is served from the store.
    public var subscriberHighWater: Int
    /// How often an idle subscription gets a keep-alive (SSE comment, WebSocket ping).
    public var pingInterval: Duration
    /// How long a WebSocket subscriber has to answer a ping before it is closed as dead (1001).
    public var pongTimeout: Duration
    /// Browser origins (`https://app.example.com`) whose pages may open the push channel, besides the gateway's own
    /// origin; `"*"` allows every origin. A WebSocket handshake carrying any other `Origin` gets `403` (cross-site
    /// WebSocket hijacking); clients that send no `Origin` (not browsers) are not affected.
    public var allowedOrigins: Set<String>
    /// Open connections the gateway accepts in total; more get `503` with `Retry-After` and are closed (keep it
    /// below the process's descriptor limit).
    public var maxConnections: Int
    /// Open connections accepted from one client address (`nil`: no limit per address); more get `503`.
    public var maxConnectionsPerAddress: Int?
    /// The largest request head (all header names and values); larger gets `431`.
    public var maxHeaderSize: Int
    /// How long a new connection has to send a complete request head, and a request its next body chunk; then
    /// `408` and close (slowloris).
    public var requestReadTimeout: Duration
    /// How long a keep-alive connection may sit idle between requests before it is closed.
    public var idleTimeout: Duration
    /// Live subscriptions (WebSocket and SSE) at once (`nil`: bounded by connections only); more get close 1013 or
    /// `503` with `Retry-After`.
    public var maxSubscriptions: Int?
    /// Appends per second per caller (token subject, or client address on an open gateway), with `appendBurst` at
    /// once (`nil`: no limit); more get `429` with `Retry-After`.
    public var appendRate: Double?
    public var appendBurst: Double?
    /// Bearer-token authentication and scopes (`nil`: an open gateway, every request may read and append).
    public var accessControl: AccessControl?
    /// Serve `https://` and `wss://` with this certificate (`nil`: plain HTTP, e.g. behind a TLS-terminating proxy).
    public var tls: GatewayTLS? = nil
    /// Webhook sinks declared in the configuration (`--sink`, the config file's `sinks`): put at start when they are
    /// missing or stored otherwise (README "Webhook sinks").
    public var webhookSinks: [DeclaredWebhookSink] = []
    /// Seals webhook sinks' secrets at rest (`--sinks-key-file`); `nil`: they are stored as given.
    public var webhookSecretSeal: WebhookSecretSeal?
    public var logger: Logger

    public init(
        host: String = "127.0.0.1", port: Int = 8080, publicURL: String? = nil, maxRequestBodySize: Int = 1 << 20,
        defaultPageSize: Int = 100, maxPageSize: Int = 1000, maxWaitSeconds: Int = 60,
        subscriptionPageSize: Int = 500, subscriberHighWater: Int = 1 << 20, pingInterval: Duration = .seconds(30),
        pongTimeout: Duration = .seconds(30), allowedOrigins: Set<String> = [], maxConnections: Int = 16_000,
        maxConnectionsPerAddress: Int? = nil, maxHeaderSize: Int = 32 * 1024, requestReadTimeout: Duration = .seconds(10),
        idleTimeout: Duration = .seconds(60), maxSubscriptions: Int? = nil, appendRate: Double? = nil, appendBurst: Double? = nil,
        accessControl: AccessControl? = nil, logger: Logger = Logger(label: "fluxgate.gateway")
    ) {
        self.host = host
        self.port = port
        self.publicURL = publicURL.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
        self.maxRequestBodySize = maxRequestBodySize
        self.defaultPageSize = defaultPageSize
        self.maxPageSize = maxPageSize
        self.maxWaitSeconds = maxWaitSeconds
        self.subscriptionPageSize = subscriptionPageSize
        self.subscriberHighWater = subscriberHighWater
        self.pingInterval = pingInterval
        self.pongTimeout = pongTimeout
        self.allowedOrigins = Set(allowedOrigins.map(Self.normalizedOrigin))
        self.maxConnections = maxConnections
        self.maxConnectionsPerAddress = maxConnectionsPerAddress
        self.maxHeaderSize = maxHeaderSize
        self.requestReadTimeout = requestReadTimeout
        self.idleTimeout = idleTimeout
        self.maxSubscriptions = maxSubscriptions
        self.appendRate = appendRate
        self.appendBurst = appendBurst
        self.accessControl = accessControl
        self.logger = logger
    }

    /// An origin as browsers send it: lowercased, without a trailing slash.
    static func normalizedOrigin(_ origin: String) -> String {
        let lowered = origin.lowercased()
        return lowered.hasSuffix("/") ? String(lowered.dropLast()) : lowered
    }
}
