import FluxWebSocket
import NIOCore
import NIOHTTP1
import Synchronization

/// Writes a subscriber's stream (a server-sent-events body, encoded WebSocket frames) to a connection with bounded
/// memory: it counts the bytes queued but not yet written to the socket, refuses offers past the high-water
/// mark, and makes awaited writes wait until the backlog drains below the low-water mark. What it queues is
/// counted in the gateway's metrics (bytes out, events delivered) before it reaches the socket.
public final class BoundedOutboundWriter: Sendable {
    /// How bytes travel down the pipeline.
    enum Framing: Sendable {
        /// As the body of an HTTP response (`HTTPServerResponsePart.body`).
        case httpBody
        /// As WebSocket frames already encoded (``WebSocketOutboundMessage/encodedFrame(_:)``), to the connection's
        /// ``WebSocketConnectionHandler``.
        case webSocketFrames
    }

    private struct State {
        var pending = 0
        var failed: (any Error)?
        var waiters: [CheckedContinuation<Void, any Error>] = []
    }

    private let channel: any Channel
    private let framing: Framing
    private let highWater: Int
    private let lowWater: Int
    private let state = Mutex(State())
    private let metrics: GatewayMetrics?

    init(channel: any Channel, framing: Framing, highWater: Int, lowWater: Int, metrics: GatewayMetrics? = nil) {
        self.channel = channel
        self.framing = framing
        self.highWater = highWater
        self.lowWater = lowWater
        self.metrics = metrics
    }

    /// Bytes queued and not yet written to the socket.
    public var pendingBytes: Int { state.withLock { $0.pending } }

    /// Queues bytes unless the backlog is over the high-water mark or the connection failed; never waits.
    /// `events`: how many events the bytes carry (for the deliveries metric). With `batch`, the write itself is
    /// left to the batch, which hands all writes for one event loop to it at once.
    public func offer(_ bytes: ByteBuffer, events: Int = 0, batch: OutboundWriteBatch? = nil) -> Bool {
        let accepted = state.withLock { state -> Bool in
            guard state.failed == nil, state.pending < highWater else { return false }
            state.pending += bytes.readableBytes
            return true
        }
        guard accepted else { return false }
        if let batch {
            batch.add(self, bytes, events: events)
        } else {
            send(bytes, events: events)
        }
        return true
    }

    /// The channel's event loop (for ``OutboundWriteBatch``).
    var eventLoop: any EventLoop { channel.eventLoop }

    /// Waits for the backlog to drain below the low-water mark, then queues the bytes.
    /// `events`: how many events the bytes carry (for the deliveries metric).
    public func write(_ bytes: ByteBuffer, events: Int = 0) async throws {
        try await waitForRoom()
        try state.withLock { state in
            if let failed = state.failed { throw failed }
            state.pending += bytes.readableBytes
        }
        send(bytes, events: events)
    }

    private func waitForRoom() async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let ready: Result<Void, any Error>? = state.withLock { state in
                if let failed = state.failed { return .failure(failed) }
                if state.pending <= lowWater { return .success(()) }
                state.waiters.append(continuation)
                return nil
            }
            if let ready { continuation.resume(with: ready) }
        }
    }

    /// Writes bytes already counted in `pending` (from any thread; cheapest on the channel's event loop).
    func send(_ bytes: ByteBuffer, events: Int) {
        let count = bytes.readableBytes
        metrics?.recordSent(bytes: count, events: events)
        let written: EventLoopFuture<Void>
        switch framing {
        case .httpBody: written = channel.writeAndFlush(HTTPServerResponsePart.body(.byteBuffer(bytes)))
        case .webSocketFrames: written = channel.writeAndFlush(WebSocketOutboundMessage.encodedFrame(bytes))
        }
        written.whenComplete { [self] result in
            let resumed: ([CheckedContinuation<Void, any Error>], Result<Void, any Error>) = state.withLock { state in
                state.pending -= count
                if case .failure(let error) = result, state.failed == nil { state.failed = error }
                if let failed = state.failed {
                    defer { state.waiters.removeAll() }
                    return (state.waiters, .failure(failed))
                }
                guard state.pending <= lowWater else { return ([], .success(())) }
                defer { state.waiters.removeAll() }
                return (state.waiters, .success(()))
            }
            for waiter in resumed.0 { waiter.resume(with: resumed.1) }
        }
    }

    /// Fails pending and future writes (the connection closed).
    func fail(_ error: any Error) {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, any Error>] in
            if state.failed == nil { state.failed = error }
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(throwing: error) }
    }
}

/// Writes gathered while the hub dispatches one page to many subscribers, handed to each event loop in one task
/// instead of one cross-thread task per subscriber.
public final class OutboundWriteBatch {
    private var byLoop: [ObjectIdentifier: (loop: any EventLoop, writes: [(BoundedOutboundWriter, ByteBuffer, Int)])] = [:]

    init() {}

    func add(_ writer: BoundedOutboundWriter, _ bytes: ByteBuffer, events: Int) {
        let loop = writer.eventLoop
        byLoop[ObjectIdentifier(loop), default: (loop, [])].writes.append((writer, bytes, events))
    }

    /// Hands the gathered writes to their event loops; returns when every loop has issued them (not when the
    /// bytes reached the sockets). The hub waits for that before its next page, so while the loops are busy,
    /// new events gather into the next page: one write per subscriber then carries many events.
    func submit() -> [EventLoopFuture<Void>] {
        var issued: [EventLoopFuture<Void>] = []
        for (_, entry) in byLoop {
            let writes = entry.writes
            issued.append(entry.loop.submit {
                for (writer, bytes, events) in writes { writer.send(bytes, events: events) }
            })
        }
        byLoop.removeAll()
        return issued
    }
}

