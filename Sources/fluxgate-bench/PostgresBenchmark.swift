import FluxCore
import FluxPostgres
import Foundation
import Logging
import NIOCore
import PostgresNIO
import Synchronization

/// PostgreSQL: appends/s against a plain baseline, and append → receive latency across two nodes.
///
/// ```
/// scripts/postgres.sh start      # a throwaway server on 127.0.0.1:54329 (or pass --url)
/// swift run -c release fluxgate-bench postgres [--url postgres://postgres@127.0.0.1:54329/postgres] [--rounds 5] [--seconds 2]
/// ```
/// Every configuration runs on a fresh database of the same server, in this process:
/// - baseline: plain single-row INSERTs into a table shaped like the store's, each committed on its own
///   (autocommit), one connection;
/// - `PostgresEventStore` with 1 writer, and with 16 concurrent writers on 16 streams (exact expected versions), with
///   one batch in flight (the default) and with two;
/// - cross-node latency: node A appends at a steady rate, node B (another store on the same database, woken by
///   LISTEN/NOTIFY) reads each event; p50/p99 of append start → read on B.
enum PostgresBenchmark {
    static func run(arguments: [String]) async throws {
        let server = try PostgresLocation(url: value(of: "--url", in: arguments) ?? "postgres://postgres@127.0.0.1:54329/postgres")
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        do {
            try await measure(on: server, arguments: arguments, logger: logger)
        } catch {
            try? await dropDatabases(on: server, logger)
            throw error
        }
        try await dropDatabases(on: server, logger)
    }

    static func measure(on server: PostgresLocation, arguments: [String], logger: Logger) async throws {
        let rounds = Int(value(of: "--rounds", in: arguments) ?? "5") ?? 5
        let seconds = Double(value(of: "--seconds", in: arguments) ?? "2") ?? 2
        guard rounds > 0, seconds > 0 else { throw BenchmarkError("--rounds and --seconds must be positive") }
        let duration = Duration.milliseconds(Int64(seconds * 1000))
        print("PostgreSQL appends at \(server), \(rounds) rounds of \(seconds) s, 1-event appends with 200-byte payloads")

        var baseline: [Double] = []
        var single: [Double] = []
        var sixteen: [Double] = []
        var sixteenTwoInFlight: [Double] = []
        var batches: [String] = []
        for _ in 0..<rounds {
            baseline.append(try await plainLoop(try await freshDatabase(server, logger), duration: duration, logger: logger))
            let (singleRate, singleStatistics) = try await storeLoop(try await freshDatabase(server, logger), writers: 1, duration: duration, logger: logger)
            single.append(singleRate)
            if arguments.contains("--verbose") { print("    1 writer: \(singleStatistics)") }
            let (rate, statistics) = try await storeLoop(try await freshDatabase(server, logger), writers: 16, duration: duration, logger: logger)
            sixteen.append(rate)
            batches.append(String(format: "%.1f", Double(statistics.requests) / Double(max(statistics.transactions, 1))))
            if arguments.contains("--verbose") { print("    16 writers: \(statistics)") }
            let (twoInFlight, twoStatistics) = try await storeLoop(
                try await freshDatabase(server, logger), writers: 16, batchesInFlight: 2, duration: duration, logger: logger)
            sixteenTwoInFlight.append(twoInFlight)
            if arguments.contains("--verbose") { print("    16 writers, 2 batches in flight: \(twoStatistics)") }
        }
        report("baseline: 1 INSERT per transaction", baseline)
        report("PostgresEventStore, 1 writer", single)
        report("PostgresEventStore, 16 writers, 16 streams", sixteen)
        report("  the same with 2 batches in flight", sixteenTwoInFlight)
        print("  appends per transaction with 16 writers, by round: \(batches.joined(separator: ", "))")
        print(String(format: "  ratio 16 writers / baseline: %.2fx; 1 writer / baseline: %.2fx",
                     median(sixteen) / median(baseline), median(single) / median(baseline)))
        print(String(format: "  16 writers, 2 batches in flight / baseline: %.2fx", median(sixteenTwoInFlight) / median(baseline)))

        let latencies = try await crossNodeLatency(try await freshDatabase(server, logger), events: 2000, rate: 200, logger: logger)
        print(String(format: "cross-node delivery (append on A → read on B, %d events at 200/s): p50 %.2f ms, p99 %.2f ms, max %.2f ms",
                     latencies.count, percentile(latencies, 0.5), percentile(latencies, 0.99), latencies.max() ?? 0))
    }

    static let payload = EventPayload(trustedJSON: Array((#"{"data":""# + String(repeating: "x", count: 189) + #""}"#).utf8))

    static func percentile(_ values: [Double], _ fraction: Double) -> Double {
        let sorted = values.sorted()
        return sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(fraction * Double(sorted.count)))]
    }

    /// The databases this run made (dropped at its end).
    static let databases = Mutex<[String]>([])

    /// A new database on `server`.
    static func freshDatabase(_ server: PostgresLocation, _ logger: Logger) async throws -> PostgresLocation {
        let name = "fluxgate_bench_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        _ = try await withClient(server, logger) { client in
            try await client.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"), logger: logger)
        }
        databases.withLock { $0.append(name) }
        return server.database(name)
    }

    /// Drops the databases this run made, so that runs do not pile them up on the server.
    static func dropDatabases(on server: PostgresLocation, _ logger: Logger) async throws {
        let names = databases.withLock { names in
            defer { names = [] }
            return names
        }
        guard !names.isEmpty else { return }
        _ = try await withClient(server, logger) { client in
            for name in names {
                try await client.query(PostgresQuery(unsafeSQL: "DROP DATABASE IF EXISTS \(name) WITH (FORCE)"), logger: logger)
            }
        }
    }

    static func withClient<T: Sendable>(_ location: PostgresLocation, _ logger: Logger, _ body: @Sendable (PostgresClient) async throws -> T) async throws -> T {
        let client = PostgresClient(
            configuration: .init(host: location.host, port: location.port, username: location.username, password: location.password,
                                 database: location.database, tls: .disable),
            backgroundLogger: logger
        )
        let run = Task { await client.run() }
        defer { run.cancel() }
        return try await body(client)
    }

    /// One INSERT per committed transaction (autocommit), one connection, on a table shaped like the store's.
    static func plainLoop(_ location: PostgresLocation, duration: Duration, logger: Logger) async throws -> Double {
        try await withClient(location, logger) { client in
            try await client.withConnection { connection in
                try await connection.query(
                    """
                    CREATE TABLE events (position BIGINT PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, aggregate_id TEXT NOT NULL,
                        aggregate_name TEXT NOT NULL, version BIGINT NOT NULL, event_type TEXT NOT NULL, recorded_at BIGINT NOT NULL,
                        payload BYTEA NOT NULL, UNIQUE (aggregate_id, version))
                    """, logger: logger)
                try await connection.query("CREATE INDEX events_by_event_type ON events (event_type, position)", logger: logger)
                try await connection.query("CREATE INDEX events_by_aggregate_name ON events (aggregate_name, position)", logger: logger)
                let bytes = ByteBuffer(bytes: payload.bytes)
                let clock = ContinuousClock()
                let start = clock.now
                let deadline = start + duration
                var count: Int64 = 0
                while clock.now < deadline {
                    count += 1
                    try await connection.query(
                        """
                        INSERT INTO events (position, event_id, aggregate_id, aggregate_name, version, event_type, recorded_at, payload)
                        VALUES (\(count), \(EventID.make()), 'bench', 'Bench', \(count - 1), 'bench.Appended', \(Timestamp.nowMilliseconds()), \(bytes))
                        """, logger: logger)
                }
                return Double(count) / AppendBenchmark.seconds(clock.now - start)
            }
        }
    }

    /// `writers` concurrent tasks appending 1-event appends until the time is up.
    static func storeLoop(
        _ location: PostgresLocation, writers: Int, batchesInFlight: Int = 1, duration: Duration, logger: Logger
    ) async throws -> (rate: Double, statistics: PostgresWriterStatistics) {
        var options = PostgresEventStore.Options()
        options.maximumConnections = 4
        options.batchesInFlight = batchesInFlight
        let store = try await PostgresEventStore.connect(to: location, options: options, logger: logger)
        let (rate, count) = try await concurrentAppends(to: store, writers: writers, payload: payload, duration: duration)
        let statistics = store.writerStatistics
        guard try await store.head() == Position(Int64(count)) else { throw BenchmarkError("the store does not hold the \(count) appended events") }
        await store.close()
        return (rate, statistics)
    }

    /// Milliseconds from the start of each append on node A to its read on node B.
    static func crossNodeLatency(_ location: PostgresLocation, events: Int, rate: Int, logger: Logger) async throws -> [Double] {
        var options = PostgresEventStore.Options()
        options.headPollInterval = .seconds(3600)  // measure the notifications, not the safety net
        let nodeA = try await PostgresEventStore.connect(to: location, options: options, logger: logger)
        let nodeB = try await PostgresEventStore.connect(to: location, options: options, logger: logger)
        try await Task.sleep(for: .milliseconds(300))
        let clock = ContinuousClock()
        let origin = clock.now
        let interval = Duration.seconds(1) / rate
        async let received: [Double] = {
            var latencies: [Double] = []
            var cursor = Position.start
            while latencies.count < events {
                _ = try await nodeB.waitForHead(beyond: cursor, timeout: .seconds(10))
                let page = try await nodeB.read(after: cursor, limit: 1000)
                let now = AppendBenchmark.seconds(clock.now - origin) * 1000
                for event in page {
                    let sent = try JSONSerialization.jsonObject(with: Data(event.payload.bytes)) as? [String: Double]
                    latencies.append(now - (sent?["sent_ms"] ?? now))
                }
                cursor = page.last?.position ?? cursor
            }
            return latencies
        }()
        for index in 0..<events {
            try await clock.sleep(until: origin + interval * index)
            let sent = AppendBenchmark.seconds(clock.now - origin) * 1000
            try await nodeA.append(
                AppendRequest(aggregateID: "latency", aggregateName: "Bench", expectedVersion: .any,
                              events: [NewEvent(eventType: "bench.Sent", payload: EventPayload(trustedJSON: Array(#"{"sent_ms":\#(sent)}"#.utf8)))])
            )
        }
        let latencies = try await received
        await nodeA.close()
        await nodeB.close()
        return latencies
    }
}
