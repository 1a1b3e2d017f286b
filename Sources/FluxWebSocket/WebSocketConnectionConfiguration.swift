/// Limits and timers of one WebSocket connection (RFC 6455 §5.4, §5.5.2, §7.1.1, §10.4).
public struct WebSocketConnectionConfiguration: Hashable, Sendable {
    /// This endpoint's role.
    public var role: WebSocketRole
    /// The largest message accepted after reassembly and decompression; larger fails with 1009 (§10.4).
    /// The default, 16 MiB, is what the Autobahn TestSuite's largest cases need.
    public var maxMessageSize: Int
    /// Send a keep-alive ping this long after the last one was answered; `nil` disables them (§5.5.2).
    public var pingInterval: Duration?
    /// Fail the connection (close code 1001) if no pong answers a keep-alive ping within this time.
    public var pongTimeout: Duration
    /// How long to wait for the peer's Close after sending ours (or, for a client, for the server to close
    /// TCP after the handshake) before closing TCP anyway (§7.1.1).
    public var closeTimeout: Duration

    /// Creates a configuration.
    public init(
        role: WebSocketRole,
        maxMessageSize: Int = 16 * 1024 * 1024,
        pingInterval: Duration? = .seconds(30),
        pongTimeout: Duration = .seconds(30),
        closeTimeout: Duration = .seconds(5)
    ) {
        self.role = role
        self.maxMessageSize = maxMessageSize
        self.pingInterval = pingInterval
        self.pongTimeout = pongTimeout
        self.closeTimeout = closeTimeout
    }
}
