import NIOCore
import NIOHTTP1
import NIOPosix

/// The floor of any gateway built on swift-nio's HTTP/1.1 stack: NIO's own server pipeline
/// (`configureHTTPServerPipeline`: decoder, encoder, pipelining handler) and one handler that answers each path from
/// a table of bytes recorded from the gateway — no routing, access control, store, metrics or headers beyond
/// `Content-Type` and `Content-Length`. `fluxgate-bench legacy` runs the original consumer's pattern against it
/// beside the gateway, so the gateway's own cost per request is the difference.
final class NIOHTTPFloorServer {
    private let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
    private var channel: (any Channel)?

    /// Serves `bodies` (path → body) on a free loopback port and returns the port.
    func start(bodies: [String: [UInt8]]) async throws -> Int {
        let channel = try await Self.bindLoopback(group: group) { TableHandler(bodies: bodies) }
        self.channel = channel
        guard let port = channel.localAddress?.port else { throw BenchmarkError("the floor server has no port") }
        return port
    }

    /// A server on a free loopback port: swift-nio's HTTP/1.1 server pipeline, then the handler `makeHandler` makes for
    /// each connection (the benchmarks' in-process servers).
    static func bindLoopback<Handler: ChannelInboundHandler>(
        group: any EventLoopGroup, makeHandler: @escaping @Sendable () -> Handler
    ) async throws -> any Channel where Handler.InboundIn == HTTPServerRequestPart {
        try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(makeHandler())
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }

    func stop() async throws {
        try await channel?.close()
        try await group.shutdownGracefully()
    }

    private final class TableHandler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let bodies: [String: [UInt8]]
        var uri = ""

        init(bodies: [String: [UInt8]]) { self.bodies = bodies }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head): uri = head.uri
            case .body: break
            case .end:
                let body = bodies[uri]
                var headers = HTTPHeaders()
                headers.add(name: "Content-Type", value: "application/json")
                headers.add(name: "Content-Length", value: String(body?.count ?? 0))
                let head = HTTPResponseHead(version: .http1_1, status: body == nil ? .notFound : .ok, headers: headers)
                context.write(wrapOutboundOut(.head(head)), promise: nil)
                if let body { context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil) }
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            }
        }
    }
}
