import FluxConsumer
import FluxCore
import FluxGateway
import Foundation
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// Fan-out: N push-channel subscribers, one writer at a steady rate; event deliveries/s and append→receive
/// latency (p50/p99). Gateway and subscribers share this process and its 2 cores, so the figures include
/// the subscribers' own cost, kept small: each subscriber is a frame reader on its event loop that counts
/// envelopes without decoding them and samples one latency per message (the first event's send time).
///
/// ```
/// swift run -c release fluxgate-bench fanout [--subscribers 1000] [--rate 500] [--seconds 10]
/// ```
enum FanOutBenchmark {
    static func run(arguments: [String]) async throws {
        let subscribers = Int(value(of: "--subscribers", in: arguments) ?? "") ?? 1000
        let rate = Double(value(of: "--rate", in: arguments) ?? "") ?? 500
        let seconds = Double(value(of: "--seconds", in: arguments) ?? "") ?? 10
        var logger = Logger(label: "bench")
        logger.logLevel = .warning
        let store = InMemoryEventStore()
        let server = GatewayServer(store: store, configuration: GatewayConfiguration(port: 0, logger: logger))
        let port = try await server.start()

        let tally = Tally(subscribers: subscribers)
        let eventMarker = Array(#"{"event_id""#.utf8)
        let sentMarker = Array(#""sent":"#.utf8)
        // Lean subscribers: a WebSocket frame reader on the event loop (no task, no stream per message), so that the
        // figures are the gateway's, not the cost of 1,000 consumer tasks sharing its 2 cores.
        var channels: [any Channel] = []
        for index in 0..<subscribers {
            let handler = LeanSubscriber(index: index, tally: tally, eventMarker: eventMarker, sentMarker: sentMarker)
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(handler) } }
                .connect(host: "127.0.0.1", port: port).get()
            let request = "GET /events/subscribe?after=0 HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            try await channel.writeAndFlush(ByteBuffer(string: request))
            channels.append(channel)
            if index % 100 == 99 { try await Task.sleep(for: .milliseconds(20)) }
        }
        while tally.ready.withLock({ $0 }) < subscribers { try await Task.sleep(for: .milliseconds(50)) }
        try await Task.sleep(for: .milliseconds(500))
        print("fan-out benchmark: \(subscribers) subscribers, 1 writer at \(Int(rate)) events/s for \(seconds) s (in one process, 2 cores)")

        let total = Int(rate * seconds)
        let started = ContinuousClock.now
        let interval = Duration.nanoseconds(Int64(1e9 / rate))
        var next = started
        for _ in 0..<total {
            let payload = EventPayload(trustedJSON: Array(#"{"sent":\#(wallNanoseconds()),"pad":"\#(String(repeating: "x", count: 150))"}"#.utf8))
            _ = try await store.append(AppendRequest(aggregateID: "fan", aggregateName: "Fan", expectedVersion: .any, events: [NewEvent(eventType: "bench.Tick", payload: payload)]))
            next += interval
            if next > .now { try await Task.sleep(until: next, clock: .continuous) }
        }
        let expected = total * subscribers
        let deadline = ContinuousClock.now + .seconds(60)
        while tally.counts.withLock({ $0.reduce(0, +) }) < expected, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        let elapsed = ContinuousClock.now - started
        let delivered = tally.counts.withLock { $0.reduce(0, +) }
        let complete = tally.counts.withLock { $0.allSatisfy { $0 == total } }
        for channel in channels { channel.close(promise: nil) }
        await server.stop()
        let samples = tally.latencies.withLock { $0.sorted() }
        let elapsedSeconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        func percentile(_ p: Double) -> Double { samples.isEmpty ? 0 : samples[min(samples.count - 1, Int(p * Double(samples.count)))] }
        print(String(format: "  deliveries: %d of %d (every subscriber got every event: %@)", delivered, expected, complete ? "yes" : "NO"))
        print(String(format: "  deliveries/s: %.0f over %.1f s; append→receive latency p50 %.1f ms, p99 %.1f ms, max %.1f ms (%d samples)",
                     Double(delivered) / elapsedSeconds, elapsedSeconds, percentile(0.5), percentile(0.99), samples.last ?? 0, samples.count))
    }

    /// What the subscribers saw, shared with their tasks.
    final class Tally: Sendable {
        let counts: Mutex<[Int]>
        let latencies = Mutex([Double]())
        let ready = Mutex(0)
        init(subscribers: Int) { counts = Mutex([Int](repeating: 0, count: subscribers)) }
    }

    static func wallNanoseconds() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec)
    }

    static func occurrences(of marker: [UInt8], in bytes: ByteBufferView) -> Int {
        var count = 0
        var index = bytes.startIndex
        let first = marker[0]
        while let found = bytes[index...].firstIndex(of: first) {
            if bytes.distance(from: found, to: bytes.endIndex) >= marker.count, bytes[found..<(found + marker.count)].elementsEqual(marker) {
                count += 1
                index = found + marker.count
            } else {
                index = found + 1
            }
        }
        return count
    }

    static func firstInteger(after marker: [UInt8], in bytes: ByteBufferView) -> Int64? {
        var index = bytes.startIndex
        while let found = bytes[index...].firstIndex(of: marker[0]) {
            if bytes.distance(from: found, to: bytes.endIndex) >= marker.count, bytes[found..<(found + marker.count)].elementsEqual(marker) {
                var value: Int64 = 0
                var cursor = found + marker.count
                while cursor < bytes.endIndex, bytes[cursor] >= 0x30, bytes[cursor] <= 0x39 {
                    value = value * 10 + Int64(bytes[cursor] - 0x30)
                    cursor += 1
                }
                return value
            }
            index = found + 1
        }
        return nil
    }
}

/// A push-channel subscriber as lean as a client can be: reads the `101`, then server frames (unmasked, one text
/// frame per batch), counting envelopes and sampling the first event's send time.
final class LeanSubscriber: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    let index: Int
    let tally: FanOutBenchmark.Tally
    let eventMarker: [UInt8]
    let sentMarker: [UInt8]
    private var buffer = ByteBuffer()
    private var upgraded = false

    init(index: Int, tally: FanOutBenchmark.Tally, eventMarker: [UInt8], sentMarker: [UInt8]) {
        self.index = index
        self.tally = tally
        self.eventMarker = eventMarker
        self.sentMarker = sentMarker
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        buffer.writeBuffer(&bytes)
        if !upgraded {
            guard let end = buffer.readableBytesView.firstRange(of: Array("\r\n\r\n".utf8)) else { return }
            let head = buffer.readString(length: end.upperBound - buffer.readerIndex) ?? ""
            guard head.hasPrefix("HTTP/1.1 101") else {
                context.close(promise: nil)
                return
            }
            upgraded = true
            tally.ready.withLock { $0 += 1 }
        }
        while let frame = takeServerFrame(from: &buffer) {
            guard frame.opcode == 0x1 || frame.opcode == 0x0 else { continue }
            let events = FanOutBenchmark.occurrences(of: eventMarker, in: frame.payload)
            if events > 0 {
                if let sent = FanOutBenchmark.firstInteger(after: sentMarker, in: frame.payload) {
                    let latency = Double(FanOutBenchmark.wallNanoseconds() - sent) / 1e6
                    tally.latencies.withLock { $0.append(latency) }
                }
                tally.counts.withLock { $0[index] += events }
            }
        }
        buffer.discardReadBytes()
    }
}
