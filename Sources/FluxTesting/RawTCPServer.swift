import NIOCore
import NIOPosix

/// A TCP listener for tests that play the server side byte by byte (a scripted WebSocket server, say):
/// every accepted connection is a ``RawTCPConnection`` that reads only when asked.
public final class RawTCPServer {
    private let channel: any Channel
    private var accepted: AsyncStream<RawTCPConnectionBox>.AsyncIterator

    /// The port the listener is bound to.
    public var port: Int { channel.localAddress?.port ?? 0 }

    private init(channel: any Channel, accepted: AsyncStream<RawTCPConnectionBox>) {
        self.channel = channel
        self.accepted = accepted.makeAsyncIterator()
    }

    /// Listens on `host`, port 0 (a free port) unless given.
    public static func listen(host: String = "127.0.0.1", port: Int = 0) async throws -> RawTCPServer {
        let (stream, continuation) = AsyncStream.makeStream(of: RawTCPConnectionBox.self)
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.autoRead, value: false)
            .childChannelInitializer { child in
                child.eventLoop.makeCompletedFuture {
                    let (bytes, bytesContinuation) = AsyncThrowingStream.makeStream(of: ByteBuffer.self)
                    let flag = RawTCPConnection.Flag()
                    try child.pipeline.syncOperations.addHandler(RawTCPConnection.Collector(continuation: bytesContinuation, readsWhileWriting: flag))
                    // Hand the connection out only once it is active: a read asked for before would be lost.
                    let box = RawTCPConnectionBox(channel: child, stream: bytes, readsWhileWriting: flag)
                    try child.pipeline.syncOperations.addHandler(OnActive { continuation.yield(box) }, position: .first)
                }
            }
            .bind(host: host, port: port).get()
        channel.closeFuture.whenComplete { _ in continuation.finish() }
        return RawTCPServer(channel: channel, accepted: stream)
    }

    /// The next accepted connection, or `nil` when none arrives within `timeout` (the listener is then closed).
    public func accept(timeout: TimeAmount) async -> RawTCPConnection? {
        let channel = self.channel
        let timer = channel.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
        defer { timer.cancel() }
        return await accept()
    }

    /// The next accepted connection (`nil` once the listener is closed).
    private func accept() async -> RawTCPConnection? {
        var iterator = accepted
        let next = await iterator.next()
        accepted = iterator
        guard let box = next else { return nil }
        return RawTCPConnection(channel: box.channel, stream: box.stream, readsWhileWriting: box.readsWhileWriting)
    }

    /// Stops listening; accepted connections stay open.
    public func close() async {
        try? await channel.close()
    }
}

@available(*, unavailable)
extension RawTCPServer: Sendable {}

/// Calls `body` when the channel becomes active.
private final class OnActive: ChannelInboundHandler {
    typealias InboundIn = NIOAny
    let body: () -> Void

    init(_ body: @escaping () -> Void) { self.body = body }

    func channelActive(context: ChannelHandlerContext) {
        body()
        context.fireChannelActive()
    }
}

/// Carries an accepted channel and its byte stream from the event loop to the test.
struct RawTCPConnectionBox: Sendable {
    let channel: any Channel
    let stream: AsyncThrowingStream<ByteBuffer, any Error>
    let readsWhileWriting: RawTCPConnection.Flag
}
