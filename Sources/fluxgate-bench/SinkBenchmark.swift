import AsyncHTTPClient
import FluxConsumer
import FluxCore
import FluxGateway
import FluxSQLite
import FluxWire
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Webhook sinks (README "Webhook sinks"):
/// - **deliveries/s** to a fast local receiver (an in-process swift-nio HTTP server that answers `204` at once), a
///   backlog of events one aggregate each, sink concurrency 16, from the sink's creation to the receiver's last
///   answer; beside the ceiling of the same path: async-http-client posting the same envelopes to the same receiver
///   from 16 tasks, with no store, ledger, signing or checkpoint;
/// - **latency** from the start of an append to the receiver's answer, events appended at a steady rate, p50/p99,
///   beside the push channel's (append start to a subscriber's receipt of the event) in the same run.
///
/// Gateway, receiver and subscriber share this process and its cores.
///
/// ```
/// swift run -c release fluxgate-bench sinks [--events 20000] [--rounds 3] [--rate 200] [--latency-events 2000] [--memory]
/// ```
enum SinkBenchmark {
    static let concurrency = 16

    static func run(arguments: [String]) async throws {
        let events = max(1, Int(value(of: "--events", in: arguments) ?? "") ?? 20_000)
        let rounds = max(1, Int(value(of: "--rounds", in: arguments) ?? "") ?? 3)
        let rate = max(1, Int(value(of: "--rate", in: arguments) ?? "") ?? 200)
        let latencyEvents = max(1, Int(value(of: "--latency-events", in: arguments) ?? "") ?? 2000)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fluxgate-sink-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let store: any EventStore & ConsumerGroupStore & WebhookSinkStore =
            arguments.contains("--memory") ? InMemoryEventStore() : try SQLiteEventStore(path: directory.appendingPathComponent("events.sqlite").path)
        let storeName = store is InMemoryEventStore ? "memory" : "SQLite"
        print("webhook sink benchmark: \(storeName) store, concurrency \(concurrency), 200-byte payloads, one aggregate per event")

        var logger = Logger(label: "bench")
        logger.logLevel = .warning
        let receiver = FastReceiver()
        let receiverPort = try await receiver.start()
        let server = GatewayServer(store: store, configuration: GatewayConfiguration(port: 0, logger: logger))
        let port = try await server.start()
        let client = HTTPClient(eventLoopGroup: MultiThreadedEventLoopGroup.singleton, configuration: {
            var configuration = HTTPClient.Configuration(redirectConfiguration: .disallow, timeout: .init(connect: .seconds(10), read: .seconds(60)))
            configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 64
            return configuration
        }())
        let admin = try await HTTPConnection.connect(host: "127.0.0.1", port: port)
        let target = "http://127.0.0.1:\(receiverPort)/hook"

        var sinkRates: [Double] = []
        var ceilingRates: [Double] = []
        var sinkCPU: [Double] = []
        var ceilingCPU: [Double] = []
        for round in 0..<rounds {
            // A backlog of `events`, then a sink that starts before it.
            let before = try await store.head()
            try await appendBacklog(store, count: events, prefix: "r\(round)")
            var backlog: [RecordedEvent] = []
            while backlog.count < events {
                let page = try await store.read(after: backlog.last?.position ?? before, limit: 1000, filter: .all)
                guard !page.isEmpty else { throw BenchmarkError("read \(backlog.count) of the \(events) events appended") }
                backlog += page
            }
            receiver.reset()
            var cpu = processCPUSeconds()
            sinkRates.append(try await FeedBenchmark.timed(events) {
                try await putSink(admin, "bench-\(round)", url: target, start: "\(before.rawValue)")
                try await receiver.waitForCount(events)
            })
            sinkCPU.append((processCPUSeconds() - cpu) / Double(events) * 1e6)
            try await deleteSink(admin, "bench-\(round)")
            // The ceiling: the same envelopes posted straight to the same receiver.
            let encoder = EnvelopeEncoder(baseURL: "http://127.0.0.1:\(port)")
            let bodies = backlog.map { event -> ByteBuffer in
                var json = JSONWriter(buffer: ByteBuffer())
                encoder.write(event, includePayload: true, into: &json)
                return json.buffer
            }
            receiver.reset()
            cpu = processCPUSeconds()
            ceilingRates.append(try await FeedBenchmark.timed(events) {
                try await postDirectly(bodies, ids: backlog.map(\.eventID), to: target, client: client)
                try await receiver.waitForCount(events)
            })
            ceilingCPU.append((processCPUSeconds() - cpu) / Double(events) * 1e6)
        }

        // Latency: a live sink and a push subscriber, events appended at a steady rate.
        let head = try await store.head()
        try await putSink(admin, "bench-latency", url: target, start: "head")
        receiver.reset()
        let subscriber = try await PushChannelConnection.connect(host: "127.0.0.1", port: port, target: "/events/subscribe?after=\(head.rawValue)", deflate: false)
        // The appends in a task; this one reads the subscription meanwhile.
        let appending = Task {
            var started: [Int64: ContinuousClock.Instant] = [:]
            let interval = Duration.seconds(1) / rate
            var next = ContinuousClock.now
            for index in 0..<latencyEvents {
                try await Task.sleep(until: next, clock: .continuous)
                next = next + interval
                let start = ContinuousClock.now
                let result = try await store.append(
                    AppendRequest(aggregateID: "latency-\(index)", aggregateName: "Bench", expectedVersion: .noStream,
                                  events: [NewEvent(eventType: "bench.Happened", payload: FeedBenchmark.payload(index))]))
                started[result.firstPosition.rawValue] = start
            }
            return started
        }
        var pushedAt: [Int64: ContinuousClock.Instant] = [:]
        while pushedAt.count < latencyEvents, let message = try await subscriber.next() {
            guard case .events(_, let batch) = message else { continue }
            let now = ContinuousClock.now
            for event in batch { pushedAt[event.position.rawValue] = now }
        }
        let started = try await appending.value
        try await receiver.waitForCount(latencyEvents)
        await subscriber.close()
        try await deleteSink(admin, "bench-latency")
        let answered = receiver.answered()

        await admin.close()
        try await client.shutdown()
        await server.stop()
        try await receiver.stop()
        if let sqlite = store as? SQLiteEventStore { try await sqlite.close() }

        report("sink: backlog delivered, 16 in flight", sinkRates)
        report("ceiling: async-http-client, 16 tasks", ceilingRates)
        print(String(format: "ratio sink / ceiling: %.2f (medians of %d rounds of %d events)", median(sinkRates) / median(ceilingRates), rounds, events))
        print(String(format: "CPU per delivery, this whole process (receiver included): sink %.0f µs, ceiling %.0f µs (medians)", median(sinkCPU), median(ceilingCPU)))
        let sinkLatency = latencies(started, answered)
        let pushLatency = latencies(started, pushedAt)
        print("latency from the start of an append, \(latencyEvents) events at \(rate)/s:")
        printLatency("sink: receiver's answer", sinkLatency)
        printLatency("push channel: subscriber's receipt", pushLatency)
    }

    /// User and system CPU time this process has used.
    static func processCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }

    /// Appends `count` events, each to its own aggregate, from 16 writers.
    static func appendBacklog(_ store: any EventStore, count: Int, prefix: String) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for writer in 0..<concurrency {
                group.addTask {
                    for index in stride(from: writer, to: count, by: concurrency) {
                        try await store.append(
                            AppendRequest(aggregateID: "\(prefix)-\(index)", aggregateName: "Bench", expectedVersion: .noStream,
                                          events: [NewEvent(eventType: "bench.Happened", payload: FeedBenchmark.payload(index))]))
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    static func putSink(_ admin: HTTPConnection, _ name: String, url: String, start: String) async throws {
        let body = #"{"url":"\#(url)","start":"\#(start)","concurrency":\#(concurrency),"timeout_ms":10000,"backoff_ms":10,"maximum_backoff_ms":100}"#
        let answer = try await admin.request(.PUT, "/sinks/\(name)", headers: [("Content-Type", "application/json")], body: ByteBuffer(string: body))
        guard answer.status == .created || answer.status == .ok else {
            throw BenchmarkError("PUT /sinks/\(name) answered \(answer.status): \(String(buffer: answer.body))")
        }
    }

    static func deleteSink(_ admin: HTTPConnection, _ name: String) async throws {
        let answer = try await admin.request(.DELETE, "/sinks/\(name)")
        guard answer.status == .noContent else { throw BenchmarkError("DELETE /sinks/\(name) answered \(answer.status)") }
    }

    /// Posts every body from `concurrency` tasks, each waiting for its answer before the next.
    static func postDirectly(_ bodies: [ByteBuffer], ids: [String], to url: String, client: HTTPClient) async throws {
        let next = Locked(0)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<concurrency {
                group.addTask {
                    while true {
                        let index = next.value.withLock { next in
                            defer { next += 1 }
                            return next
                        }
                        guard index < bodies.count else { return }
                        var request = HTTPClientRequest(url: url)
                        request.method = .POST
                        request.headers.add(name: "content-type", value: "application/json")
                        request.headers.add(name: "webhook-id", value: ids[index])
                        request.body = .bytes(bodies[index])
                        let response = try await client.execute(request, timeout: .seconds(10))
                        _ = try await response.body.collect(upTo: 1 << 16)
                        guard (200..<300).contains(response.status.code) else { throw BenchmarkError("the receiver answered \(response.status)") }
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    /// Milliseconds from each start to its end, sorted (positions without an end are left out).
    static func latencies(_ started: [Int64: ContinuousClock.Instant], _ ended: [Int64: ContinuousClock.Instant]) -> [Double] {
        started.compactMap { position, start in
            ended[position].map { end in
                let elapsed = end - start
                return (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18) * 1000
            }
        }.sorted()
    }

    static func printLatency(_ name: String, _ sorted: [Double]) {
        func percentile(_ p: Double) -> Double { sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(p * Double(sorted.count)))] }
        let label = name.padding(toLength: 36, withPad: " ", startingAt: 0)
        print("  \(label) " + String(format: "p50 %7.2f ms   p99 %7.2f ms   max %7.2f ms   (%d samples)", percentile(0.5), percentile(0.99), sorted.last ?? 0, sorted.count))
    }
}

/// A value that tasks share.
final class Locked<Value: Sendable>: Sendable {
    let value: Mutex<Value>
    init(_ value: Value) { self.value = Mutex(value) }
}

/// The fast receiver: swift-nio's HTTP/1.1 server pipeline (`NIOHTTPFloorServer.bindLoopback`) and a handler that reads the envelope's `position` and
/// answers `200` with an empty body at once, noting when (no signature check: the benchmark measures the sender).
final class FastReceiver: Sendable {
    private let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    private let channel = Mutex<(any Channel)?>(nil)
    private let tally = Tally()

    private struct State {
        var answered: [Int64: ContinuousClock.Instant] = [:]
        var unreadable = 0
    }

    /// What the handlers of every connection note.
    private final class Tally: Sendable {
        let state = Mutex(State())
    }

    func start() async throws -> Int {
        let tally = self.tally
        let channel = try await NIOHTTPFloorServer.bindLoopback(group: group) { Handler(tally: tally) }
        self.channel.withLock { $0 = channel }
        guard let port = channel.localAddress?.port else { throw BenchmarkError("the receiver has no port") }
        return port
    }

    func stop() async throws {
        try await channel.withLock { $0 }?.close()
        try await group.shutdownGracefully()
    }

    func reset() {
        tally.state.withLock { $0 = State() }
    }

    /// When each position was answered (the first time).
    func answered() -> [Int64: ContinuousClock.Instant] {
        tally.state.withLock { $0.answered }
    }

    /// Waits until `count` different positions were answered (up to 10 minutes).
    func waitForCount(_ count: Int) async throws {
        let deadline = ContinuousClock.now + .seconds(600)
        while true {
            let (received, unreadable) = tally.state.withLock { ($0.answered.count, $0.unreadable) }
            if received >= count { return }
            guard unreadable == 0 else { throw BenchmarkError("the receiver got \(unreadable) bodies without a position") }
            guard ContinuousClock.now < deadline else { throw BenchmarkError("the receiver got \(received) of \(count) events in 10 minutes") }
            try await Task.sleep(for: .milliseconds(2))
        }
    }

    private final class Handler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let tally: Tally
        var body = ByteBuffer()

        init(tally: Tally) { self.tally = tally }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head:
                body.clear()
            case .body(var part):
                body.writeBuffer(&part)
            case .end:
                let position = Self.position(in: body)
                var headers = HTTPHeaders()
                headers.add(name: "Content-Length", value: "0")
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
                let now = ContinuousClock.now
                tally.state.withLock { state in
                    guard let position else { return state.unreadable += 1 }
                    if state.answered[position] == nil { state.answered[position] = now }
                }
            }
        }

        /// The number after `"position":` in an envelope (a plain scan: Foundation's `firstRange(of:)` cost the
        /// receiver more than its HTTP parsing).
        static func position(in body: ByteBuffer) -> Int64? {
            let key: StaticString = #""position":"#
            return body.withUnsafeReadableBytes { bytes -> Int64? in
                let keyBytes = UnsafeRawBufferPointer(start: key.utf8Start, count: key.utf8CodeUnitCount)
                guard bytes.count > keyBytes.count else { return nil }
                var index = 0
                search: while index + keyBytes.count < bytes.count {
                    for offset in 0..<keyBytes.count where bytes[index + offset] != keyBytes[offset] {
                        index += 1
                        continue search
                    }
                    var value: Int64 = 0
                    var digits = 0
                    var cursor = index + keyBytes.count
                    while cursor < bytes.count, (0x30...0x39).contains(bytes[cursor]), digits < 18 {
                        value = value * 10 + Int64(bytes[cursor] - 0x30)
                        digits += 1
                        cursor += 1
                    }
                    return digits > 0 ? value : nil
                }
                return nil
            }
        }
    }
}
