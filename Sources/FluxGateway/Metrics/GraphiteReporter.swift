import FluxCore
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization

/// Pushes the gateway's metrics to a Graphite carbon server over TCP in the plaintext protocol, every
/// ``GraphiteConfiguration/interval``: the snapshot `GET /metrics` serves, rendered by ``GraphiteRenderer``.
///
/// Run it as a swift-service-lifecycle `Service` beside the gateway; it never touches request handling. It keeps
/// one connection to carbon, reconnecting after a failure or a close with a bounded backoff (100 ms, doubling, at
/// most 10 s). A snapshot is written whole or dropped whole: when there is no connection, or when more than
/// ``GraphiteConfiguration/maxPendingBytes`` are still waiting for carbon's socket, it is dropped and counted in
/// `fluxgate_graphite_dropped_snapshots_total`, so a slow or absent carbon costs no memory beyond that bound.
/// Each change of the link (connected, unreachable, backlogged, caught up) is logged once. On graceful shutdown
/// it pushes a last snapshot, waiting at most ``GraphiteConfiguration/shutdownFlushTimeout``.
public final class GraphiteReporter: Service, Sendable {
    /// What is pushed: the Prometheus text exposition of the moment.
    public typealias Snapshot = @Sendable () async -> [UInt8]

    /// The link to carbon, as last logged.
    enum Link: Equatable, Sendable {
        case starting
        case connected
        case unreachable
        case backlogged
    }

    private struct State {
        var channel: (any Channel)?
        var link = Link.starting
    }

    private let configuration: GraphiteConfiguration
    private let metrics: GatewayMetrics
    private let snapshot: Snapshot
    private let logger: Logger
    private let group: any EventLoopGroup
    private let state = Mutex(State())

    /// A reporter of `metrics`' snapshots as `snapshot` takes them (its dropped snapshots are counted in `metrics`).
    public init(
        configuration: GraphiteConfiguration, metrics: GatewayMetrics, logger: Logger,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, snapshot: @escaping Snapshot
    ) {
        self.configuration = configuration
        self.metrics = metrics
        self.snapshot = snapshot
        self.group = group
        var logger = logger
        logger[metadataKey: "graphite"] = "\(configuration.host):\(configuration.port)"
        self.logger = logger
    }

    /// A reporter of `server`'s metrics, as its `GET /metrics` serves them.
    public convenience init(configuration: GraphiteConfiguration, server: GatewayServer, logger: Logger) {
        self.init(configuration: configuration, metrics: server.metrics, logger: logger) { await server.metricsSnapshot() }
    }

    /// The delay before connection attempt `failures + 1`: 100 ms after the first failure, doubling, at most 10 s.
    static func backoff(afterFailures failures: Int) -> Duration {
        let doublings = min(max(failures - 1, 0), 7)  // 100 ms × 2⁷ is past the cap already
        return min(.milliseconds(100 << doublings), .seconds(10))
    }

    /// Pushes until the service group shuts down gracefully (then pushes a last snapshot) or the task is cancelled.
    public func run() async throws {
        metrics.enableGraphiteMetrics()
        logger.info(
            "pushing metrics to Graphite",
            metadata: ["prefix": "\(configuration.prefix)", "interval": "\(configuration.interval)"])
        await withDiscardingTaskGroup { group in
            group.addTask { await self.keepConnected() }
            await pushUntilShutdown()
            if Task.isShuttingDownGracefully && !Task.isCancelled { await flushLastSnapshot() }
            group.cancelAll()
        }
        let channel = state.withLock { state -> (any Channel)? in
            defer { state.channel = nil }
            return state.channel
        }
        try? await channel?.close()
    }

    // MARK: Connection

    /// Connects, waits for the connection to end, and connects again after the backoff, until cancelled.
    private func keepConnected() async {
        var failures = 0
        while !Task.isCancelled {
            do {
                let channel = try await connect()
                failures = 0
                state.withLock { $0.channel = channel }
                changeLink(to: .connected)
                await withTaskCancellationHandler {
                    try? await channel.closeFuture.get()
                } onCancel: {
                    channel.close(promise: nil)
                }
                state.withLock { state in
                    if state.channel === channel { state.channel = nil }
                }
                if Task.isCancelled { return }
                changeLink(to: .unreachable, reason: "carbon closed the connection")
            } catch {
                if Task.isCancelled { return }
                changeLink(to: .unreachable, reason: "\(error)")
            }
            failures += 1
            try? await Task.sleep(for: Self.backoff(afterFailures: failures))
        }
    }

    private func connect() async throws -> any Channel {
        let high = configuration.maxPendingBytes
        return try await ClientBootstrap(group: group)
            .connectTimeout(.seconds(2))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.writeBufferWaterMark, value: ChannelOptions.Types.WriteBufferWaterMark(low: high / 2, high: high))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(GraphiteConnectionHandler())
                }
            }
            .connect(host: configuration.host, port: configuration.port).get()
    }

    /// Notes a change of the link and logs it, once per change.
    private func changeLink(to link: Link, reason: String? = nil) {
        let previous = state.withLock { state -> Link in
            defer { state.link = link }
            return state.link
        }
        guard previous != link else { return }
        switch link {
        case .starting:
            break
        case .connected where previous == .backlogged:
            logger.info("carbon caught up; pushing every snapshot again")
        case .connected:
            logger.info("connected to carbon")
        case .unreachable:
            logger.info(
                "carbon is unreachable; dropping snapshots (counted in fluxgate_graphite_dropped_snapshots_total) and reconnecting with a backoff of up to 10 s",
                metadata: reason.map { ["reason": "\($0)"] } ?? [:])
        case .backlogged:
            logger.info(
                "carbon reads slower than the snapshots come; dropping whole snapshots (counted in fluxgate_graphite_dropped_snapshots_total) until it catches up",
                metadata: ["pending_limit_bytes": "\(configuration.maxPendingBytes)"])
        }
    }

    // MARK: Pushing

    private func pushUntilShutdown() async {
        let clock = ContinuousClock()
        let interval = configuration.interval
        var next = clock.now + interval
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do {
                try await cancelWhenGracefulShutdown { [next] in try await Task.sleep(until: next, clock: clock) }
            } catch {
                return
            }
            if Task.isShuttingDownGracefully { return }
            _ = await pushSnapshot()
            next += interval
            if next < clock.now { next = clock.now + interval }
        }
    }

    /// Takes, renders and writes one snapshot; returns the write's future, or `nil` when it was dropped.
    private func pushSnapshot() async -> EventLoopFuture<Void>? {
        let exposition = await snapshot()
        let lines = GraphiteRenderer.render(exposition: exposition, prefix: configuration.prefix, timestamp: Timestamp.nowMilliseconds() / 1000)
        guard let channel = state.withLock({ $0.channel }) else {
            metrics.recordGraphiteDroppedSnapshot()
            return nil
        }
        guard channel.isWritable else {
            metrics.recordGraphiteDroppedSnapshot()
            changeLink(to: .backlogged)
            return nil
        }
        changeLink(to: .connected)
        return channel.writeAndFlush(channel.allocator.buffer(bytes: lines))
    }

    /// On graceful shutdown: one last snapshot, written within the flush timeout (connecting first if the link is
    /// down), else dropped.
    private func flushLastSnapshot() async {
        let clock = ContinuousClock()
        let deadline = clock.now + configuration.shutdownFlushTimeout
        while state.withLock({ $0.channel }) == nil, clock.now < deadline, !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(20))
        }
        guard let write = await pushSnapshot() else {
            logger.info("the last metrics snapshot was not pushed: carbon is unreachable or backlogged")
            return
        }
        let channel = state.withLock { $0.channel }
        let written = await withTaskGroup(of: Bool.self) { group in
            group.addTask { (try? await write.get()) != nil }
            group.addTask {
                try? await Task.sleep(until: deadline, clock: clock)
                // Past the deadline: closing fails the pending write, which ends the other task.
                if !Task.isCancelled { try? await channel?.close() }
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
        if written {
            logger.info("pushed the last metrics snapshot to carbon")
        } else {
            logger.info("the last metrics snapshot did not reach carbon in \(configuration.shutdownFlushTimeout)")
        }
    }
}

/// Ignores what carbon sends (nothing, in the plaintext protocol) and closes the connection on an error, which
/// makes ``GraphiteReporter`` reconnect.
final class GraphiteConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

@available(*, unavailable)
extension GraphiteConnectionHandler: Sendable {}
