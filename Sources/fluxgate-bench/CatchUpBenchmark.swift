import FluxConsumer
import FluxCore
import FluxGateway
import FluxSQLite
import Foundation
import Logging
import NIOCore
import NIOPosix

/// Catch-up: one consumer replays every stored event from position 0 over the WebSocket push channel
/// (200-byte payloads, SQLite), beside a baseline in the same run: the same pages read straight from the store.
///
/// ```
/// swift run -c release fluxgate-bench catchup [--events 1000000] [--rounds 3] [--deflate]
/// ```
enum CatchUpBenchmark {
    static func run(arguments: [String]) async throws {
        let events = Int(value(of: "--events", in: arguments) ?? "") ?? 1_000_000
        let rounds = Int(value(of: "--rounds", in: arguments) ?? "") ?? 3
        let deflate = arguments.contains("--deflate")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fluxgate-catchup-bench-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try SQLiteEventStore(path: directory.appendingPathComponent("events.sqlite").path, durability: .normal)
        let filling = ContinuousClock.now
        try await FeedBenchmark.fill(store, events: events)
        print("catch-up benchmark: \(events) events of 200-byte payloads in SQLite (filled in \(filling.duration(to: .now))), \(rounds) rounds, deflate \(deflate)")
        var logger = Logger(label: "bench")
        logger.logLevel = .warning
        let server = GatewayServer(store: store, configuration: GatewayConfiguration(port: 0, logger: logger))
        let port = try await server.start()

        var storeRates: [Double] = []
        var pushRates: [Double] = []
        var leanRates: [Double] = []
        for _ in 0..<rounds {
            storeRates.append(try await FeedBenchmark.timed(events) {
                var after = Position.start
                while true {
                    let page = try await store.read(after: after, limit: 500)
                    guard let last = page.last else { break }
                    after = last.position
                }
            })
            pushRates.append(try await FeedBenchmark.timed(events) {
                let connection = try await PushChannelConnection.connect(host: "127.0.0.1", port: port, target: "/events/subscribe?after=0", deflate: deflate)
                var seen = 0
                var last = Position.start
                while seen < events {
                    guard let message = try await connection.next() else { throw BenchmarkError("the push channel closed after \(seen) events") }
                    guard case .events(_, let batch) = message else { continue }
                    for event in batch {
                        guard event.position == last.next else { throw BenchmarkError("gap or duplicate at \(event.position) after \(last)") }
                        last = event.position
                    }
                    seen += batch.count
                }
                await connection.close()
            })
            // The gateway's side alone: a subscriber that only counts envelopes in the frames (no decoding).
            leanRates.append(try await FeedBenchmark.timed(events) {
                let done = MultiThreadedEventLoopGroup.singleton.next().makePromise(of: Void.self)
                let counter = EnvelopeCounter(expected: events, done: done)
                let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                    .channelOption(.socketOption(.tcp_nodelay), value: 1)
                    .channelInitializer { channel in channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(counter) } }
                    .connect(host: "127.0.0.1", port: port).get()
                try await channel.writeAndFlush(ByteBuffer(string: "GET /events/subscribe?after=0 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"))
                try await done.futureResult.get()
                try await channel.close()
            })
        }
        await server.stop()
        try await store.close()
        report("store.read pages of 500, no network (baseline)", storeRates)
        report("push channel catch-up, decoded, checked", pushRates)
        report("push channel catch-up, envelopes counted only (the gateway's side)", leanRates)
        print(String(format: "ratio push channel / store baseline: %.2f; target ≥ 200,000 events/s: %@",
                     median(pushRates) / median(storeRates), median(pushRates) >= 200_000 ? "met" : "NOT met"))
    }
}

/// Reads the `101`, then counts envelopes (`"event_id"` keys) in the server's frames until `expected` arrived.
final class EnvelopeCounter: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    private let expected: Int
    private let done: EventLoopPromise<Void>
    private var buffer = ByteBuffer()
    private var upgraded = false
    private var seen = 0
    private var finished = false
    private let marker = Array(#"{"event_id""#.utf8)

    init(expected: Int, done: EventLoopPromise<Void>) {
        self.expected = expected
        self.done = done
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        buffer.writeBuffer(&bytes)
        if !upgraded {
            guard let end = buffer.readableBytesView.firstRange(of: Array("\r\n\r\n".utf8)) else { return }
            buffer.moveReaderIndex(to: end.upperBound)
            upgraded = true
        }
        while let frame = takeServerFrame(from: &buffer) {
            seen += FanOutBenchmark.occurrences(of: marker, in: frame.payload)
        }
        buffer.discardReadBytes()
        if seen >= expected, !finished {
            finished = true
            done.succeed(())
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !finished {
            finished = true
            done.fail(BenchmarkError("the push channel closed after \(seen) events"))
        }
    }
}
