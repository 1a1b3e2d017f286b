import NIOCore
import NIOPosix
import Synchronization

// The one client of `fluxgate-bench websocket echo` and `idle`, used against both servers: plain NIO over
// TCP, writing the handshake and pre-built masked frames itself, so neither WebSocket layer is on the client side.

/// Client-side wire bytes written by hand (RFC 6455 §4.1, §5.2, §5.3), neutral between the two implementations.
enum WebSocketWire {
    /// A client opening handshake (RFC 6455 §4.1) with a fixed key; no extensions offered.
    static func handshakeRequest(host: String, port: Int) -> ByteBuffer {
        ByteBuffer(string: "GET / HTTP/1.1\r\nHost: \(host):\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    }

    /// Appends one final, masked client frame to `buffer`.
    static func writeMaskedFrame(opcode: UInt8, payload: [UInt8], key: UInt32, into buffer: inout ByteBuffer) {
        buffer.writeInteger(0x80 | opcode)
        if payload.count <= 125 {
            buffer.writeInteger(0x80 | UInt8(payload.count))
        } else if payload.count <= Int(UInt16.max) {
            buffer.writeMultipleIntegers(UInt8(0x80 | 126), UInt16(payload.count))
        } else {
            buffer.writeMultipleIntegers(UInt8(0x80 | 127), UInt64(payload.count))
        }
        buffer.writeInteger(key)
        let keyBytes = [UInt8(truncatingIfNeeded: key >> 24), UInt8(truncatingIfNeeded: key >> 16), UInt8(truncatingIfNeeded: key >> 8), UInt8(truncatingIfNeeded: key)]
        buffer.writeBytes(payload.enumerated().map { $0.element ^ keyBytes[$0.offset & 3] })
    }

    /// The size of an unmasked server frame carrying `payloadLength` bytes.
    static func serverFrameSize(payloadLength: Int) -> Int {
        payloadLength + (payloadLength <= 125 ? 2 : payloadLength <= Int(UInt16.max) ? 4 : 10)
    }
}

/// Counters and the go/stop switch shared by a set of load connections.
final class LoadControl: Sendable {
    let roundTrips = Atomic<Int>(0)
    let outstanding = Atomic<Int>(0)
    let running = Atomic<Bool>(false)
}

/// One client connection: handshakes, then — while its ``LoadControl`` runs — sends the next message as soon as
/// the echo of the previous one has fully arrived (one message in flight per connection).
final class LoadConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let request: ByteBuffer
    private let handshake: ByteBuffer
    private let replySize: Int
    private let control: LoadControl
    private var handshakeDone: EventLoopPromise<Void>?
    private var responseHead = ByteBuffer()
    private var pendingReplyBytes = 0

    init(handshake: ByteBuffer, request: ByteBuffer, replySize: Int, control: LoadControl, handshakeDone: EventLoopPromise<Void>) {
        self.handshake = handshake
        self.request = request
        self.replySize = replySize
        self.control = control
        self.handshakeDone = handshakeDone
    }

    func channelActive(context: ChannelHandlerContext) {
        context.writeAndFlush(Self.wrapOutboundOut(handshake), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = Self.unwrapInboundIn(data)
        if let promise = handshakeDone {
            responseHead.writeBuffer(&bytes)
            let view = responseHead.readableBytesView
            guard let end = view.firstRange(of: [13, 10, 13, 10]) else { return }
            handshakeDone = nil
            let head = String(decoding: view[view.startIndex..<end.lowerBound], as: UTF8.self)
            guard head.hasPrefix("HTTP/1.1 101") else {
                promise.fail(BenchmarkError("handshake refused: \(head.prefix(80))"))
                context.close(promise: nil)
                return
            }
            promise.succeed(())
            pendingReplyBytes = view.endIndex - end.upperBound
            responseHead = ByteBuffer()
        } else {
            pendingReplyBytes += bytes.readableBytes
        }
        while pendingReplyBytes >= replySize {
            pendingReplyBytes -= replySize
            control.roundTrips.wrappingAdd(1, ordering: .relaxed)
            if control.running.load(ordering: .relaxed) {
                context.writeAndFlush(Self.wrapOutboundOut(request), promise: nil)
            } else {
                control.outstanding.wrappingSubtract(1, ordering: .relaxed)
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        handshakeDone?.fail(BenchmarkError("connection closed during the handshake"))
        handshakeDone = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        handshakeDone?.fail(error)
        handshakeDone = nil
        context.close(promise: nil)
    }
}

/// A set of WebSocket client connections to one server.
struct LoadClient {
    let channels: [Channel]
    let control: LoadControl
    let request: ByteBuffer

    /// Opens `connections` connections (at most `concurrency` handshakes at a time) and completes each handshake.
    /// `messageSize` is the payload of the masked binary message sent per round trip.
    static func connect(
        group: EventLoopGroup, host: String = "127.0.0.1", port: Int, connections: Int, messageSize: Int, concurrency: Int = 100
    ) async throws -> LoadClient {
        var request = ByteBuffer()
        let payload = (0..<messageSize).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        WebSocketWire.writeMaskedFrame(opcode: 0x2, payload: payload, key: 0x1234_5678, into: &request)
        let replySize = WebSocketWire.serverFrameSize(payloadLength: messageSize)
        let handshake = WebSocketWire.handshakeRequest(host: host, port: port)
        let control = LoadControl()
        let finalRequest = request

        let channels = try await withThrowingTaskGroup(of: Channel.self) { tasks in
            var opened: [Channel] = []
            opened.reserveCapacity(connections)
            var started = 0
            func open() {
                tasks.addTask {
                    let loop = group.next()
                    let done = loop.makePromise(of: Void.self)
                    let channel = try await ClientBootstrap(group: loop)
                        .channelOption(.socketOption(.tcp_nodelay), value: 1)
                        .channelInitializer { channel in
                            channel.eventLoop.makeCompletedFuture {
                                try channel.pipeline.syncOperations.addHandler(
                                    LoadConnectionHandler(handshake: handshake, request: finalRequest, replySize: replySize, control: control, handshakeDone: done))
                            }
                        }
                        .connect(host: host, port: port).get()
                    try await done.futureResult.get()
                    return channel
                }
                started += 1
            }
            while started < min(concurrency, connections) { open() }
            for try await channel in tasks {
                opened.append(channel)
                if started < connections { open() }
            }
            return opened
        }
        return LoadClient(channels: channels, control: control, request: request)
    }

    /// What one ``run(seconds:cpuTime:)`` measured.
    struct Run {
        var roundTripsPerSecond: Double
        var roundTrips: Int
        /// Seconds of the measured window.
        var seconds: Double
        /// The change of each `cpuTime` reading across the window (nanoseconds).
        var cpuNanoseconds: [UInt64]
    }

    /// Ping-pongs on every connection for `seconds` (after a short ramp-up) and returns round trips per second;
    /// waits for the last messages in flight before returning. `cpuTime` is read at both ends of the window.
    func run(seconds: Double, cpuTime: () -> [UInt64] = { [] }) async throws -> Run {
        control.running.store(true, ordering: .relaxed)
        for channel in channels {
            control.outstanding.wrappingAdd(1, ordering: .relaxed)
            channel.writeAndFlush(request, promise: nil)
        }
        try await Task.sleep(for: .milliseconds(200))
        let clock = ContinuousClock()
        let cpuBefore = cpuTime()
        let start = clock.now
        let before = control.roundTrips.load(ordering: .relaxed)
        try await Task.sleep(for: .seconds(seconds))
        let after = control.roundTrips.load(ordering: .relaxed)
        let elapsed = clock.now - start
        let cpuAfter = cpuTime()
        control.running.store(false, ordering: .relaxed)
        let deadline = clock.now + .seconds(10)
        while control.outstanding.load(ordering: .relaxed) > 0 {
            guard clock.now < deadline else { throw BenchmarkError("\(control.outstanding.load(ordering: .relaxed)) echoes never came back") }
            try await Task.sleep(for: .milliseconds(20))
        }
        return Run(
            roundTripsPerSecond: Double(after - before) / elapsed.seconds, roundTrips: after - before, seconds: elapsed.seconds,
            cpuNanoseconds: zip(cpuAfter, cpuBefore).map { $0 &- $1 })
    }

    /// Ping-pongs on every connection until `roundTrips` round trips are done (a fixed amount of work, for timing a
    /// whole process), then waits for the messages still in flight.
    func run(roundTrips: Int) async throws {
        let before = control.roundTrips.load(ordering: .relaxed)
        control.running.store(true, ordering: .relaxed)
        for channel in channels {
            control.outstanding.wrappingAdd(1, ordering: .relaxed)
            channel.writeAndFlush(request, promise: nil)
        }
        while control.roundTrips.load(ordering: .relaxed) - before < roundTrips {
            try await Task.sleep(for: .milliseconds(2))
        }
        control.running.store(false, ordering: .relaxed)
        while control.outstanding.load(ordering: .relaxed) > 0 {
            try await Task.sleep(for: .milliseconds(2))
        }
    }

    /// Closes every connection (TCP close, no closing handshake: the servers do not care, and it is quick).
    func close() async {
        let closed = channels.map { $0.close() }
        for future in closed {
            try? await future.get()
        }
    }
}

extension Duration {
    var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
