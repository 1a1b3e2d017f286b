import FluxCore
import FluxSQLite
import Foundation
import GRDB

/// Durable appends/s: group commit against one transaction per append, at the same durability
/// (WAL, `synchronous = FULL`), in one process.
///
/// ```
/// swift run -c release fluxgate-bench appends [--rounds 5] [--seconds 2] [--verbose]
/// ```
/// Configurations, each on a fresh temporary file per round:
/// - baseline: a plain GRDB loop, one INSERT per committed transaction, one writer;
/// - ceiling: the same loop with 16 INSERTs (on 16 streams) per transaction, what group commit of 16 appends
///   could reach at best on this machine (no lookups, no waiting for appenders);
/// - `SQLiteEventStore` with 1 writer;
/// - `SQLiteEventStore` with 16 concurrent writers of 1-event appends, on 16 streams (exact expected versions);
/// - the same on one stream with `.any`.
enum AppendBenchmark {
    static func run(arguments: [String]) async throws {
        let rounds = Int(value(of: "--rounds", in: arguments) ?? "5") ?? 5
        let seconds = Double(value(of: "--seconds", in: arguments) ?? "2") ?? 2
        guard rounds > 0, seconds > 0 else { throw BenchmarkError("--rounds and --seconds must be positive") }
        let duration = Duration.milliseconds(Int64(seconds * 1000))
        print("durable appends (WAL, synchronous=FULL), \(rounds) rounds of \(seconds) s, 1-event appends with 200-byte payloads")

        var baseline: [Double] = []
        var ceiling: [Double] = []
        var single: [Double] = []
        var sixteen: [Double] = []
        var sixteenOneStream: [Double] = []
        var batches: [String] = []
        for _ in 0..<rounds {
            baseline.append(try await inTemporaryDirectory { try plainLoop(path: $0, perTransaction: 1, duration: duration) })
            ceiling.append(try await inTemporaryDirectory { try plainLoop(path: $0, perTransaction: 16, duration: duration) })
            single.append(try await inTemporaryDirectory { try await storeLoop(path: $0, writers: 1, oneStream: false, duration: duration).rate })
            let (rate, statistics) = try await inTemporaryDirectory { try await storeLoop(path: $0, writers: 16, oneStream: false, duration: duration) }
            sixteen.append(rate)
            batches.append(String(format: "%.1f", Double(statistics.requests) / Double(max(statistics.transactions, 1))))
            sixteenOneStream.append(try await inTemporaryDirectory { try await storeLoop(path: $0, writers: 16, oneStream: true, duration: duration).rate })
            if arguments.contains("--verbose") {
                // Per round, to tell a round disturbed by other work on the machine (the configurations run one after another).
                print(String(format: "    round %d: baseline %.0f, ceiling %.0f, 1 writer %.0f, 16 writers %.0f (%.1fx), 1 stream %.0f; ",
                             baseline.count, baseline.last!, ceiling.last!, single.last!, rate, rate / baseline.last!, sixteenOneStream.last!)
                      + "16 writers: \(statistics)")
            }
        }
        report("baseline: 1 INSERT per transaction", baseline)
        report("ceiling: 16 INSERTs per transaction", ceiling)
        report("SQLiteEventStore, 1 writer", single)
        report("SQLiteEventStore, 16 writers, 16 streams", sixteen)
        report("SQLiteEventStore, 16 writers, 1 stream (.any)", sixteenOneStream)
        print("  appends per transaction with 16 writers, by round: \(batches.joined(separator: ", "))")
        print(String(format: "  ratio 16 writers / baseline: %.1fx (16 streams), %.1fx (1 stream); 1 writer / baseline: %.2fx",
                     median(sixteen) / median(baseline), median(sixteenOneStream) / median(baseline), median(single) / median(baseline)))
        print(String(format: "  ceiling / baseline: %.1fx; 16 writers (16 streams) / ceiling: %.2f",
                     median(ceiling) / median(baseline), median(sixteen) / median(ceiling)))
    }

    static let payload = EventPayload(trustedJSON: Array((#"{"data":""# + String(repeating: "x", count: 189) + #""}"#).utf8))

    /// `perTransaction` INSERTs per committed transaction (one per stream, on as many streams) with plain GRDB,
    /// on a table shaped like the store's; returns rows per second.
    static func plainLoop(path: String, perTransaction: Int, duration: Duration) throws -> Double {
        let pool = try DatabasePool(path: path)
        defer { try? pool.close() }
        try pool.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
            try db.execute(
                sql: """
                    CREATE TABLE events (
                        position INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, aggregate_id TEXT NOT NULL,
                        aggregate_name TEXT NOT NULL, version INTEGER NOT NULL, event_type TEXT NOT NULL,
                        recorded_at INTEGER NOT NULL, payload BLOB NOT NULL, UNIQUE (aggregate_id, version));
                    CREATE INDEX events_by_event_type ON events (event_type, position);
                    CREATE INDEX events_by_aggregate_name ON events (aggregate_name, position);
                    """
            )
        }
        let bytes = Data(payload.bytes)
        let clock = ContinuousClock()
        let start = clock.now
        let deadline = start + duration
        var count: Int64 = 0
        var version: Int64 = 0
        while clock.now < deadline {
            try pool.write { db in
                let insert = try db.cachedStatement(
                    sql: "INSERT INTO events (position, event_id, aggregate_id, aggregate_name, version, event_type, recorded_at, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                )
                for stream in 0..<perTransaction {
                    try insert.execute(arguments: [
                        count + Int64(stream) + 1, EventID.make(), "bench-\(stream)", "Bench", version, "bench.Appended", Timestamp.nowMilliseconds(), bytes,
                    ])
                }
            }
            count += Int64(perTransaction)
            version += 1
        }
        return Double(count) / seconds(clock.now - start)
    }

    /// `writers` concurrent tasks appending 1-event appends to a `SQLiteEventStore` until the time is up.
    static func storeLoop(path: String, writers: Int, oneStream: Bool, duration: Duration) async throws -> (rate: Double, statistics: SQLiteWriterStatistics) {
        let store = try SQLiteEventStore(path: path, durability: .full)
        let (rate, count) = try await concurrentAppends(to: store, writers: writers, oneStream: oneStream, payload: payload, duration: duration)
        let statistics = store.writerStatistics
        try await store.close()
        guard try await headOf(path: path) == Int64(count) else { throw BenchmarkError("the store does not hold the \(count) appended events") }
        return (rate, statistics)
    }

    static func headOf(path: String) async throws -> Int64 {
        let store = try SQLiteEventStore(path: path)
        let head = try await store.head().rawValue
        try await store.close()
        return head
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    static func inTemporaryDirectory<T>(_ body: (String) async throws -> T) async throws -> T {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fluxgate-bench-\(UUID().uuidString.lowercased())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        return try await body(directory.appendingPathComponent("events.sqlite").path)
    }
}
