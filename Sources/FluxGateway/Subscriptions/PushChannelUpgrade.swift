import FluxCore
import FluxWebSocket
import NIOCore
import NIOHTTP1

/// What the router decided for a WebSocket upgrade: the `101` headers, the connection's RFC 6455 settings and the
/// application's handler (the push channel's, or a consumer group member's), which runs above the connection's
/// ``WebSocketConnectionHandler``.
struct PushChannelUpgrade: Sendable {
    var headers: HTTPHeaders
    var deflate: WebSocketDeflateParameters?
    var connection: WebSocketConnectionConfiguration
    var makeHandler: @Sendable () -> any ChannelHandler
}

extension GatewayRouter {
    /// `GET /events/subscribe` with a WebSocket upgrade (README "Wire protocol" → "Push channel").
    ///
    /// A malformed handshake is answered in HTTP (`400`, `426`). A well-formed handshake is accepted even
    /// when the subscription cannot be served: the client then gets a close code it can act on — 4400 for a
    /// bad query, 4409 when its offsets belong to another store.
    func webSocketSubscription(_ request: GatewayRequest, grant: AccessGrant) async throws -> GatewayResponse {
        guard let hub else {
            return .error(.serviceUnavailable, "unavailable", "subscriptions are not enabled on this server")
        }
        let acceptance: WebSocketServerHandshake.Acceptance
        switch checkWebSocketUpgrade(request, deflate: WebSocketDeflateOptions(serverNoContextTakeover: true)) {
        case .refuse(let refusal): return refusal
        case .accept(let accepted): acceptance = accepted
        }
        var closeFirst: (WebSocketCloseCode, String)?
        let slot = subscriptionSlots.take()
        var query: SubscriptionQuery?
        do {
            var parsed = try SubscriptionQuery(request)
            parsed.filter = try restrict(parsed.filter, to: grant)
            if let mismatch = try await parsed.mismatch(with: store) {
                closeFirst = (PushChannelHandler.epochMismatch, mismatch.closeReason)
            }
            query = parsed
        } catch let error as BadRequest {
            closeFirst = (PushChannelHandler.badQuery, error.message)
        }
        if slot == nil {
            closeFirst = (
                .tryAgainLater,
                "the gateway has its maximum of \(subscriptionSlots.maximum ?? 0) subscriptions; retry later or on another node"
            )
        }
        let driver = query.map {
            SubscriptionDriver(
                store: store, hub: hub, filter: $0.filter, baseURL: baseURL(for: request), pageSize: configuration.subscriptionPageSize,
                pages: subscriptionPages
            )
        }
        let settings = PushChannelHandler.Settings(
            after: query?.after ?? .start, deflate: acceptance.deflate, closeFirst: closeFirst,
            highWater: configuration.subscriberHighWater, pingInterval: configuration.pingInterval,
            pongTimeout: configuration.pongTimeout, expiresAt: grant.expiresAt, slot: slot, compressor: pushCompressor,
            metrics: metrics, logger: configuration.logger
        )
        var response = GatewayResponse(status: .switchingProtocols, headers: acceptance.headers)
        response.upgrade = PushChannelUpgrade(headers: acceptance.headers, deflate: acceptance.deflate, connection: settings.connection) {
            PushChannelHandler(driver: driver, settings: settings)
        }
        return response
    }

    /// What ``checkWebSocketUpgrade(_:deflate:)`` decided.
    enum WebSocketUpgradeCheck {
        case accept(WebSocketServerHandshake.Acceptance)
        /// The HTTP answer that refuses the upgrade (`403` for a page's origin, `400`/`426` for a malformed handshake).
        case refuse(GatewayResponse)
    }

    /// Checks a WebSocket upgrade of any endpoint: a browser page's origin (cross-site WebSocket hijacking), then
    /// the RFC 6455 handshake (permessage-deflate as `deflate` allows).
    func checkWebSocketUpgrade(_ request: GatewayRequest, deflate: WebSocketDeflateOptions?) -> WebSocketUpgradeCheck {
        if let origin = request.headers.first(name: "Origin"), !isAllowed(origin: origin, request) {
            return .refuse(.error(
                .forbidden, "origin_not_allowed",
                "pages from \(origin) may not open WebSockets to this gateway; its operator can allow them with --allow-origin \(origin)"
            ))
        }
        let head = HTTPRequestHead(version: request.version, method: request.method, uri: request.uri, headers: request.headers)
        switch WebSocketServerHandshake(deflate: deflate).evaluate(head) {
        case .reject(let rejection):
            return .refuse(.error(rejection.status, "bad_handshake", rejection.reason, headers: rejection.headers))
        case .accept(let accepted):
            return .accept(accepted)
        }
    }

    /// Whether a browser page from `origin` may open the push channel: the gateway's own origin (as the request
    /// or the configured public URL names it), or one of `allowedOrigins` (`"*"` for all).
    func isAllowed(origin: String, _ request: GatewayRequest) -> Bool {
        let allowed = configuration.allowedOrigins
        if allowed.contains("*") { return true }
        let origin = GatewayConfiguration.normalizedOrigin(origin)
        if allowed.contains(origin) { return true }
        let own = GatewayConfiguration.normalizedOrigin(baseURL(for: request))
        if origin == own { return true }
        // Same host and port whatever the scheme (a TLS-terminating proxy in front of plain HTTP).
        func authority(_ url: String) -> Substring { url.split(separator: "://", maxSplits: 1).last ?? Substring(url) }
        return authority(origin) == authority(own)
    }
}
