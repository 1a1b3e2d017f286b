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
        var single: [Double] = []
        var sixteen: [Double] = []
        var sixteenOneStream: [Double] = []
        var batches: [String] = []
        for _ in 0..<rounds {
            baseline.append(try await inTemporaryDirectory { try plainLoop(path: $0, duration: duration) })
            single.append(try await inTemporaryDirectory { try await storeLoop(path: $0, writers: 1, oneStream: false, duration: duration).rate })
            let (rate, statistics) = try await inTemporaryDirectory { try await storeLoop(path: $0, writers: 16, oneStream: false, duration: duration) }
            sixteen.append(rate)
            batches.append(String(format: "%.1f", Double(statistics.requests) / Double(max(statistics.transactions, 1))))
            if arguments.contains("--verbose") { print("    16 writers: \(statistics)") }
            sixteenOneStream.append(try await inTemporaryDirectory { try await storeLoop(path: $0, writers: 16, oneStream: true, duration: duration).rate })
        }
        report("baseline: 1 INSERT per transaction", baseline)
        report("SQLiteEventStore, 1 writer", single)
        report("SQLiteEventStore, 16 writers, 16 streams", sixteen)
        report("SQLiteEventStore, 16 writers, 1 stream (.any)", sixteenOneStream)
        print("  appends per transaction with 16 writers, by round: \(batches.joined(separator: ", "))")
        print(String(format: "  ratio 16 writers / baseline: %.1fx (16 streams), %.1fx (1 stream); 1 writer / baseline: %.2fx",
                     median(sixteen) / median(baseline), median(sixteenOneStream) / median(baseline), median(single) / median(baseline)))
    }

    static let payload = EventPayload(trustedJSON: Array((#"{"data":""# + String(repeating: "x", count: 189) + #""}"#).utf8))

    /// One INSERT per committed transaction with plain GRDB, on a table shaped like the store's.
    static func plainLoop(path: String, duration: Duration) throws -> Double {
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
        while clock.now < deadline {
            count += 1
            try pool.write { db in
                try db.cachedStatement(
                    sql: "INSERT INTO events (position, event_id, aggregate_id, aggregate_name, version, event_type, recorded_at, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                ).execute(arguments: [count, EventID.make(), "bench", "Bench", count - 1, "bench.Appended", Timestamp.nowMilliseconds(), bytes])
            }
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
