@testable import FluxGateway
import FluxTesting
import Logging
import NIOCore
import ServiceLifecycle
import Testing

/// The reporter over real loopback sockets, with a scripted carbon (a TCP listener that reads when told): it pushes
/// plaintext lines, reconnects, drops whole snapshots when carbon is away or backlogged, and flushes on shutdown.
@Suite struct GraphiteReporterTests {
    static let quiet: Logger = {
        var logger = Logger(label: "graphite.tests")
        logger.logLevel = .error
        return logger
    }()

    /// Runs `reporter` in a service group for `body`; shuts the group down gracefully after it.
    func withReporter(_ reporter: GraphiteReporter, _ body: () async throws -> Void) async throws {
        let group = ServiceGroup(services: [reporter], logger: Self.quiet)
        let running = Task { try await group.run() }
        do {
            try await body()
        } catch {
            await group.triggerGracefulShutdown()
            _ = await running.result
            throw error
        }
        await group.triggerGracefulShutdown()
        try await running.value
    }

    /// Runs `body` with a scripted carbon: a loopback listener whose connections read only when asked.
    func withScriptedCarbon(_ body: (RawTCPServer) async throws -> Void) async throws {
        let carbon = try await RawTCPServer.listen()
        try await withTeardown({ await carbon.close() }) { try await body(carbon) }
    }

    /// The value of `name` in the metrics' exposition (0 when absent).
    func value(_ name: String, in metrics: GatewayMetrics) -> Double {
        let text = String(decoding: metrics.exposition(), as: UTF8.self)
        return text.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ")[1]) } ?? 0
    }

    @Test func theBackoffStartsAt100MillisecondsAndDoublesUpTo10Seconds() {
        let delays = (1...10).map { GraphiteReporter.backoff(afterFailures: $0) }
        #expect(delays.prefix(8) == [.milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(800), .milliseconds(1600),
                                     .milliseconds(3200), .milliseconds(6400), .seconds(10)])
        #expect(delays.suffix(2) == [.seconds(10), .seconds(10)])
    }

    @Test func pushesEachSnapshotAsPlaintextLinesAndReconnectsWhenCarbonHangsUp() async throws {
        try await withScriptedCarbon { carbon in
            let metrics = GatewayMetrics()
            let configuration = try GraphiteConfiguration(host: "127.0.0.1", port: carbon.port, prefix: "test.gw", interval: .seconds(1))
            let reporter = GraphiteReporter(configuration: configuration, metrics: metrics, logger: Self.quiet) { metrics.exposition() }
            try await withReporter(reporter) {
                let first = try #require(await carbon.accept(timeout: .seconds(60)))
                let line = try #require(try await first.readUntil("\n"))
                #expect(line.wholeMatch(of: /test\.gw\.[A-Za-z0-9_.-]+ \S+ \d{10}\n/) != nil, "\(line)")
                #expect(try await first.readUntil("test.gw.appended_events_total ") != nil)
                await first.close()
                // A new connection within the backoff, and snapshots on it.
                let second = try #require(await carbon.accept(timeout: .seconds(60)))
                #expect(try await second.readUntil("test.gw.graphite_dropped_snapshots_total ") != nil)
                await second.close()
            }
        }
    }

    @Test func snapshotsAreDroppedWholeAndCountedWhileCarbonIsAway() async throws {
        let closed = try ClosedPort()
        let metrics = GatewayMetrics()
        let configuration = try GraphiteConfiguration(host: "127.0.0.1", port: closed.port, interval: .seconds(1))
        let reporter = GraphiteReporter(configuration: configuration, metrics: metrics, logger: Self.quiet) { metrics.exposition() }
        #expect(value("fluxgate_graphite_dropped_snapshots_total", in: metrics) == 0)
        try await withReporter(reporter) {
            let deadline = ContinuousClock.now + .seconds(60)
            while value("fluxgate_graphite_dropped_snapshots_total", in: metrics) < 2, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(value("fluxgate_graphite_dropped_snapshots_total", in: metrics) >= 2)
        }
    }

    /// A carbon that accepts but never reads: once its socket's buffers and the reporter's bound are full, snapshots
    /// are dropped whole instead of queued.
    @Test func aCarbonThatDoesNotReadMakesTheReporterDropSnapshotsNotQueueThem() async throws {
        try await withScriptedCarbon { carbon in
            let metrics = GatewayMetrics()
            // A snapshot of about 3 MB (100,000 series), so that the loopback socket's buffers fill in a few seconds.
            let big = Array((0..<100_000).map { "fluxgate_load{series=\"\($0)\"} 1\n" }.joined().utf8)
            let configuration = try GraphiteConfiguration(
                host: "127.0.0.1", port: carbon.port, interval: .seconds(1), maxPendingBytes: 64 * 1024, shutdownFlushTimeout: .milliseconds(500))
            let reporter = GraphiteReporter(configuration: configuration, metrics: metrics, logger: Self.quiet) { big }
            try await withReporter(reporter) {
                let connection = try #require(await carbon.accept(timeout: .seconds(60)))
                let deadline = ContinuousClock.now + .seconds(60)
                while value("fluxgate_graphite_dropped_snapshots_total", in: metrics) < 2, ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(200))
                }
                #expect(value("fluxgate_graphite_dropped_snapshots_total", in: metrics) >= 2)
                await connection.close()
            }
        }
    }

    /// On graceful shutdown the last snapshot is pushed (here the only one: the interval is an hour).
    @Test func gracefulShutdownPushesTheLastSnapshot() async throws {
        try await withScriptedCarbon { carbon in
            let metrics = GatewayMetrics()
            let configuration = try GraphiteConfiguration(host: "127.0.0.1", port: carbon.port, interval: .seconds(3600))
            let reporter = GraphiteReporter(configuration: configuration, metrics: metrics, logger: Self.quiet) { metrics.exposition() }
            let group = ServiceGroup(services: [reporter], logger: Self.quiet)
            let running = Task { try await group.run() }
            let connection = try #require(await carbon.accept(timeout: .seconds(60)))
            metrics.recordConflict()
            await group.triggerGracefulShutdown()
            let started = ContinuousClock.now
            try await running.value
            // Bounded (the flush waits at most 3 s); generous, as the whole suite runs beside it on two cores.
            #expect(ContinuousClock.now - started < .seconds(60))
            while try await connection.readMore() {}
            let text = connection.withBuffered { String(buffer: $0) }
            #expect(text.contains("fluxgate.append_conflicts_total 1 "), "\(text.prefix(300))")
            #expect(text.hasSuffix("\n"))
            await connection.close()
        }
    }
}
