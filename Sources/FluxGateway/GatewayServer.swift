import FluxCore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import Synchronization

/// The gateway's HTTP server on SwiftNIO: the JSON feed, the append API, stream reads and health.
///
/// Run it as a swift-service-lifecycle `Service` (it stops gracefully when the group shuts down), or call
/// `start()` / `stop()` directly (tests).
public final class GatewayServer: Service, Sendable {
    private struct State {
        var serverChannel: (any Channel)?
        var hubTask: Task<Void, Never>?
        var connections: [ObjectIdentifier: any Channel] = [:]
        /// Open connections per client address (for `maxConnectionsPerAddress`).
        var perAddress: [String: Int] = [:]
        var stopped = false
    }

    private let router: GatewayRouter
    /// The live fan-out of new events to subscribers.
    public let hub: SubscriptionHub
    /// This server's metrics (its own Prometheus registry), served at `GET /metrics`.
    public let metrics: GatewayMetrics
    private let configuration: GatewayConfiguration
    private let group: any EventLoopGroup
    private let state = NIOLockedValueBox(State())
    /// Numbers connections for logs (`connection` metadata, request ids).
    private let connectionCounter = Atomic<UInt64>(0)
    /// Refused connections lingering for their `503` to be read.
    private let refusals = RefusalBudget()
    /// Connections admitted at once: the configured maximum, lowered to what the descriptor limit leaves room for.
    private let maxConnections: Int

    /// `metrics`: where the server counts (a new set by default); pass one made beforehand to hand it to a
    /// ``GraphiteReporter`` that starts before the server.
    public init(
        store: any EventStore, configuration: GatewayConfiguration,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, metrics: GatewayMetrics = GatewayMetrics()
    ) {
        let store = MeteredEventStore(store, metrics: metrics)
        self.metrics = metrics
        self.hub = SubscriptionHub(store: store, maxPageBytes: configuration.maxPageBytes, logger: configuration.logger, metrics: metrics)
        self.router = GatewayRouter(store: store, configuration: configuration, hub: hub, metrics: metrics)
        self.configuration = configuration
        self.group = group
        let descriptorLimit = DescriptorBudget.currentLimit() ?? Int.max
        self.maxConnections = DescriptorBudget.connections(configured: configuration.maxConnections, descriptorLimit: descriptorLimit)
        if maxConnections < configuration.maxConnections {
            configuration.logger.warning(
                "admitting at most \(maxConnections) connections (not \(configuration.maxConnections)): the process may open \(descriptorLimit) descriptors and keeps \(DescriptorBudget.reserve(forLimit: descriptorLimit)) in reserve; raise the limit (ulimit -n, LimitNOFILE=) for more"
            )
        }
    }

    /// Names of the HTTP handlers.
    enum HandlerName {
        static let encoder = "http-encoder"
        static let decoder = "http-decoder"
        static let pipelining = "http-pipelining"
        static let gate = "http-request-gate"
        static let handler = "http-handler"
    }

    /// The metrics as `GET /metrics` serves them (consumer groups' gauges refreshed from the store first), in the
    /// Prometheus text format: what ``GraphiteReporter`` pushes.
    public func metricsSnapshot() async -> [UInt8] {
        await router.metricsSnapshot()
    }

    /// The port the server listens on, once started (useful with port `0`).
    public var localPort: Int? {
        state.withLockedValue { $0.serverChannel?.localAddress?.port }
    }

    /// Binds and starts accepting connections; returns the bound port. The subscription hub runs in a task that
    /// ``stop(timeout:)`` ends (``run()`` runs it as a child task instead).
    @discardableResult
    public func start() async throws -> Int {
        try await start(hubInTask: true)
    }

    @discardableResult
    private func start(hubInTask: Bool) async throws -> Int {
        let router = self.router
        let logger = configuration.logger
        let tls = configuration.tls
        let refusals = self.refusals
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelInitializer { channel in
                // Out of descriptors (EMFILE/ENFILE) or memory on accept: stop accepting for a moment and keep
                // serving the connections we have, instead of spinning on the failing accept.
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(AcceptBackoffHandler(shouldForwardIOErrorCaught: true))
                    try channel.pipeline.syncOperations.addHandler(AcceptErrorLogger(logger: logger))
                }
            }
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelInitializer { [weak self] channel in
                let refusal: String? = self.map { $0.admit(channel) } ?? "the server is stopping"
                let connectionID = self?.connectionCounter.wrappingAdd(1, ordering: .relaxed).oldValue ?? 0
                return channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    if let tls {
                        // TLS first: everything after it (HTTP, the push channel upgrade) sees plain bytes.
                        let (server, failures) = tls.makeHandlers(logger: logger)
                        try pipeline.addHandler(server)
                        try pipeline.addHandler(failures)
                    }
                    if let refusal {
                        // Over a connection limit: answer 503 at once and close, whether or not a request came.
                        try pipeline.addHandler(RefusedConnectionHandler(message: refusal, budget: refusals))
                        return
                    }
                    try Self.addHTTPHandlers(to: pipeline, router: router, connectionID: connectionID + 1)
                }
            }
        let hub = self.hub
        let hubTask = hubInTask ? Task { await Self.runHub(hub, logger: logger) } : nil
        let channel: any Channel
        do {
            channel = try await bootstrap.bind(host: configuration.host, port: configuration.port).get()
        } catch {
            hubTask?.cancel()
            await hubTask?.value
            throw error
        }
        state.withLockedValue {
            $0.serverChannel = channel
            $0.hubTask = hubTask
        }
        let port = channel.localAddress?.port ?? configuration.port
        logger.info("fluxgate gateway listening", metadata: ["address": "\(tls == nil ? "http" : "https")://\(configuration.host):\(port)"])
        // Webhook sinks deliver while the gateway runs; their envelopes' `url`s point here.
        let host = configuration.host.contains(":") ? "[\(configuration.host)]" : configuration.host
        await router.startSinks(baseURL: configuration.publicURL ?? "\(tls == nil ? "http" : "https")://\(host):\(port)")
        return port
    }

    /// Adds an admitted connection's HTTP/1.1 handlers, configured by `router`'s configuration: the response encoder,
    /// the request decoder, the request gate, the pipelining handler and ``HTTPServerHandler``.
    static func addHTTPHandlers(to pipeline: ChannelPipeline.SynchronousOperations, router: GatewayRouter, connectionID: UInt64) throws {
        let configuration = router.configuration
        var limits = NIOHTTPDecoderLimitConfiguration()
        limits.maxHeaderListSize = configuration.maxHeaderSize
        limits.maxHeaderFieldSize = configuration.maxHeaderSize
        limits.maxHeaderFieldCount = 200
        let encoder = HTTPResponseEncoder()
        // Bytes after a WebSocket handshake are forwarded to the push channel when the decoder leaves.
        let decoder = ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes, limitConfiguration: limits))
        let gate = PipelinedRequestGate()
        let pipelining = HTTPServerPipelineHandler()
        try pipeline.addHandler(encoder, name: HandlerName.encoder)
        try pipeline.addHandler(decoder, name: HandlerName.decoder)
        try pipeline.addHandler(gate, name: HandlerName.gate)
        try pipeline.addHandler(pipelining, name: HandlerName.pipelining)
        try pipeline.addHandler(
            HTTPServerHandler(
                router: router, maxBodySize: configuration.maxRequestBodySize, streamHighWater: configuration.subscriberHighWater,
                requestReadTimeout: configuration.requestReadTimeout, idleTimeout: configuration.idleTimeout, connectionID: connectionID,
                httpHandlers: HTTPConnectionHandlers(requestDecoder: decoder, others: [encoder, gate, pipelining]),
                logger: configuration.logger
            ),
            name: HandlerName.handler
        )
    }

    /// Counts a new connection against the limits; returns why it is refused (it is then answered with 503 and
    /// closed), or `nil` when it is admitted.
    private func admit(_ channel: any Channel) -> String? {
        let id = ObjectIdentifier(channel)
        let address = channel.remoteAddress?.ipAddress ?? "unknown"
        let (maximum, perAddressMaximum) = (maxConnections, configuration.maxConnectionsPerAddress)
        let refusal: String? = state.withLockedValue { state in
            if state.stopped { return "the server is stopping; retry on another node or later" }
            if state.connections.count >= maximum {
                return "the gateway has its maximum of \(maximum) open connections; retry later"
            }
            if let perAddressMaximum, state.perAddress[address, default: 0] >= perAddressMaximum {
                return "\(address) has its maximum of \(perAddressMaximum) open connections to this gateway; close some or retry later"
            }
            state.connections[id] = channel
            state.perAddress[address, default: 0] += 1
            return nil
        }
        if refusal == nil {
            metrics.connectionOpened()
            let metrics = self.metrics
            channel.closeFuture.whenComplete { [weak self] _ in
                metrics.connectionClosed()
                self?.state.withLockedValue { state in
                    state.connections.removeValue(forKey: id)
                    state.perAddress[address, default: 1] -= 1
                    if state.perAddress[address] == 0 { state.perAddress.removeValue(forKey: address) }
                }
            }
        } else {
            metrics.connectionRefused()
            configuration.logger.notice("refused a connection", metadata: ["address": "\(address)", "reason": "\(refusal!)"])
        }
        return refusal
    }

    /// Stops accepting, lets in-flight appends finish, ends long-polls, closes every connection. Waits at
    /// most `timeout` for connections to close before closing them hard.
    public func stop(timeout: Duration = .seconds(10)) async {
        let (server, connections, hubTask) = state.withLockedValue { state -> ((any Channel)?, [any Channel], Task<Void, Never>?) in
            state.stopped = true
            return (state.serverChannel, Array(state.connections.values), state.hubTask)
        }
        try? await server?.close()
        hubTask?.cancel()
        hub.stop()
        for connection in connections {
            connection.pipeline.fireUserInboundEventTriggered(GatewayShutdownEvent())
        }
        let deadline = ContinuousClock.now + timeout
        // The hub's task ends before the stop does (nothing of the gateway outlives `stop()`), unless a store read
        // it is in holds it past the deadline.
        if let hubTask {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await hubTask.value }
                group.addTask { try? await Task.sleep(until: deadline) }
                await group.next()
                group.cancelAll()
            }
        }
        // Connections close themselves once their response is written; whatever is still open at the
        // deadline is closed hard.
        for connection in connections {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { try? await connection.closeFuture.get() }
                group.addTask {
                    try? await Task.sleep(until: deadline)
                    if !Task.isCancelled { try? await connection.close() }
                }
                await group.next()
                group.cancelAll()
            }
        }
        await router.stopSinks()
        await router.stopGroups()
        configuration.logger.info("fluxgate gateway stopped")
    }

    /// Runs until the service group shuts down gracefully (or the task is cancelled), then stops; the subscription
    /// hub is a child task, so nothing of the gateway outlives this call.
    public func run() async throws {
        let (hub, logger) = (self.hub, configuration.logger)
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { await Self.runHub(hub, logger: logger) }
            try await start(hubInTask: false)
            try? await gracefulShutdown()
            group.cancelAll()  // the hub's child task only; it ends while `stop()` detaches its subscribers
            await stop()
        }
    }

    /// Runs the subscription hub until cancelled, restarting it a second after a failure (live subscribers stay
    /// attached; the hub resumes from where it stopped).
    private static func runHub(_ hub: SubscriptionHub, logger: Logger) async {
        while !Task.isCancelled {
            do {
                try await hub.run()
            } catch is CancellationError {
                return
            } catch {
                logger.error("the subscription hub failed; retrying in 1 s", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }
}

/// Logs what made an accept fail (after ``AcceptBackoffHandler`` has paused accepting), at most once a second.
final class AcceptErrorLogger: ChannelInboundHandler {
    typealias InboundIn = any Channel

    private let logger: Logger
    private var lastLogged: NIODeadline?

    init(logger: Logger) { self.logger = logger }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let now = NIODeadline.now()
        if let lastLogged, now - lastLogged < .seconds(1) { return }
        lastLogged = now
        logger.error("accepting a connection failed; pausing accepts briefly and serving the open connections", metadata: ["error": "\(error)"])
    }
}
