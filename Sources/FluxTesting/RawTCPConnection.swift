import NIOCore
import NIOPosix
import Synchronization

/// A plain TCP connection for tests that read a stream as it comes (server-sent events) or speak bytes.
public final class RawTCPConnection {
    private let channel: any Channel
    private var iterator: AsyncThrowingStream<ByteBuffer, any Error>.AsyncIterator
    /// Bytes received and not yet consumed by `readUntil`.
    public private(set) var buffered = ByteBuffer()
    /// How long one read or write may wait for the peer: past it the connection is closed and the read or write
    /// throws ``Timeout``, so that a peer that hangs fails the test instead of hanging the run.
    public var timeout: Duration = .seconds(60)

    /// A read or write the peer did not let finish within ``timeout``.
    public struct Timeout: Error, CustomStringConvertible {
        public var description: String
    }

    init(channel: any Channel, stream: AsyncThrowingStream<ByteBuffer, any Error>, readsWhileWriting: Flag) {
        self.channel = channel
        self.readsWhileWritingFlag = readsWhileWriting
        self.iterator = stream.makeAsyncIterator()
    }

    public static func connect(host: String = "127.0.0.1", port: Int, receiveBuffer: Int? = nil) async throws -> RawTCPConnection {
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: ByteBuffer.self)
        // Reads happen only when asked (`readMore`), so a test that stops reading exerts real TCP backpressure.
        var bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).channelOption(.autoRead, value: false)
        if let receiveBuffer {
            bootstrap = bootstrap.channelOption(.socketOption(.so_rcvbuf), value: .init(receiveBuffer))
        }
        let flag = Flag()
        let channel = try await bootstrap
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Collector(continuation: continuation, readsWhileWriting: flag))
                }
            }
            .connect(host: host, port: port).get()
        return RawTCPConnection(channel: channel, stream: stream, readsWhileWriting: flag)
    }

    public func send(_ text: String) async throws {
        try await send(raw: ByteBuffer(string: text))
    }

    public func send(raw bytes: ByteBuffer) async throws {
        let channel = self.channel
        try await bounded("writing \(bytes.readableBytes) bytes") { try await channel.writeAndFlush(bytes) }
    }

    /// Reads more bytes into `buffered`; `false` at end of stream.
    public func readMore() async throws -> Bool {
        channel.read()
        var iterator = self.iterator
        let chunk = try await bounded("reading") { try await iterator.next() }
        self.iterator = iterator
        guard var chunk else { return false }
        buffered.writeBuffer(&chunk)
        return true
    }

    /// Runs `operation`, closing the connection if it takes longer than `timeout` (which ends the read or write);
    /// throws ``Timeout`` then.
    private func bounded<Result>(_ what: String, _ operation: () async throws -> Result) async throws -> Result {
        let expired = Expired()
        let channel = self.channel
        let timeout = self.timeout
        let timer = channel.eventLoop.scheduleTask(in: .nanoseconds(Int64(timeout / .nanoseconds(1)))) {
            expired.set()
            channel.close(promise: nil)
        }
        defer { timer.cancel() }
        let failure = Timeout(description: "\(what) on the connection to \(channel.remoteAddress.map { "\($0)" } ?? "the peer") took more than \(timeout): the peer hung, the connection is closed")
        do {
            let result = try await operation()
            if expired.isSet { throw failure }
            return result
        } catch {
            throw expired.isSet ? failure : error
        }
    }

    /// Reads until `buffered` contains `marker`; returns and consumes everything up to and including it
    /// (`nil` when the stream ends first).
    public func readUntil(_ marker: String) async throws -> String? {
        while true {
            let text = String(buffer: buffered)
            if let range = text.range(of: marker) {
                let prefix = String(text[..<range.upperBound])
                buffered.moveReaderIndex(forwardBy: prefix.utf8.count)
                return prefix
            }
            guard try await readMore() else { return nil }
        }
    }

    /// Lets a parser consume from the received bytes in place.
    public func withBuffered<Result>(_ body: (inout ByteBuffer) throws -> Result) rethrows -> Result {
        try body(&buffered)
    }

    public var isActive: Bool { channel.isActive }

    public func close() async {
        try? await channel.close()
    }

    /// Closes the connection after `delay` unless the returned task is cancelled, calling `onTimeout` first:
    /// a peer that never answers then fails the test instead of hanging the run.
    public func closeAfter(_ delay: TimeAmount, onTimeout: @escaping @Sendable () -> Void) -> Scheduled<Void> {
        let channel = self.channel
        return channel.eventLoop.scheduleTask(in: delay) {
            onTimeout()
            channel.close(promise: nil)
        }
    }

    /// Whether the connection reads while a write of its is in flight (off by default: a test that does not read
    /// exerts real TCP backpressure). A peer that writes a lot and reads only afterwards needs it against a server
    /// that stops reading while its answers are not read (an echo server): both would wait for ever. Autobahn's client
    /// reads while it writes, too. What is read waits in the connection for ``readMore()``.
    public var readsWhileWriting: Bool {
        get { readsWhileWritingFlag.value.load(ordering: .relaxed) }
        set { readsWhileWritingFlag.value.store(newValue, ordering: .relaxed) }
    }
    private let readsWhileWritingFlag: Flag

    /// A switch shared with the connection's ``Collector``.
    final class Flag: Sendable {
        let value = Atomic<Bool>(false)
    }

    /// Sends a FIN (half-close): the peer reads end of stream while this side can still read.
    public func shutdownOutput() async {
        try? await channel.close(mode: .output)
    }

    /// Forwards received bytes (and the end of the stream, or a read error) to a `RawTCPConnection`'s stream; with
    /// ``readsWhileWriting``, reads as long as a write is in flight.
    final class Collector: ChannelDuplexHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundIn = ByteBuffer
        let continuation: AsyncThrowingStream<ByteBuffer, any Error>.Continuation
        let readsWhileWriting: Flag
        private var writesInFlight = 0

        init(continuation: AsyncThrowingStream<ByteBuffer, any Error>.Continuation, readsWhileWriting: Flag) {
            self.continuation = continuation
            self.readsWhileWriting = readsWhileWriting
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            continuation.yield(unwrapInboundIn(data))
        }

        func channelReadComplete(context: ChannelHandlerContext) {
            if writesInFlight > 0 { context.read() }
            context.fireChannelReadComplete()
        }

        func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
            guard readsWhileWriting.value.load(ordering: .relaxed) else {
                context.write(data, promise: promise)
                return
            }
            let written = promise ?? context.eventLoop.makePromise()
            writesInFlight += 1
            if writesInFlight == 1 { context.read() }
            written.futureResult.assumeIsolated().whenComplete { [self] _ in writesInFlight -= 1 }
            context.write(data, promise: written)
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            continuation.finish(throwing: error)
            context.close(promise: nil)
        }

        func channelInactive(context: ChannelHandlerContext) {
            continuation.finish()
            context.fireChannelInactive()
        }
    }
}

@available(*, unavailable)
extension RawTCPConnection: Sendable {}

/// Set on the event loop when a bounded read or write ran out of time.
private final class Expired: Sendable {
    private let value = Mutex(false)
    func set() { value.withLock { $0 = true } }
    var isSet: Bool { value.withLock { $0 } }
}
