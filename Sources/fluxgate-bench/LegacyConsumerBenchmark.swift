import FluxConsumer
import FluxCore
import FluxGateway
import FluxSQLite
import Foundation
import GRDBSQLite
import Logging
import NIOCore

/// The original flux consumer's request pattern: `GET /events?offset=N` (pages of 20), then one `GET url` per entry
/// for its payload — the pattern of every unmodified consumer of the Go framework.
///
/// 1. **Lookup by id on SQLite**: `SQLiteEventStore.event(id:)` beside a bare indexed lookup of the same rows on the
///    same file with the SQLite C API (one prepared statement, values copied out), in the same process. Target: the
///    store within 2× of the bare lookup.
/// 2. **The pattern over loopback**, memory and SQLite stores, one keep-alive connection and a new connection per
///    request (Go's client makes a new one when the consumer leaves a body unread), beside `GET /health` over the
///    same connections (the HTTP floor: no store, no JSON). Per event: a twentieth of a page plus one entry.
/// 3. **swift-nio's own floor**: the same bytes (every page and entry, recorded from the gateway) answered by NIO's
///    HTTP/1.1 server pipeline and a table lookup (`NIOHTTPFloorServer`); the gateway's cost per request is the
///    difference, and no server on this stack can be faster for the consumer than this floor.
///
/// `swift run -c release fluxgate-bench legacy [--events 3000] [--rounds 5]`. Side-by-side figures against the
/// original's own Go server are measured outside the repository (the note says how).
enum LegacyConsumerBenchmark {
    static func run(arguments: [String]) async throws {
        let events = Int(value(of: "--events", in: arguments) ?? "") ?? 3000
        let rounds = Int(value(of: "--rounds", in: arguments) ?? "") ?? 5
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fluxgate-legacy-bench-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("events.sqlite").path
        let sqlite = try SQLiteEventStore(path: path, durability: .normal)
        let memory = InMemoryEventStore()
        try await fill(sqlite, memory, events: events)
        var ids: [String] = []
        var after = Position.start
        while true {
            let page = try await sqlite.read(after: after, limit: 1000)
            guard let last = page.last else { break }
            ids += page.map(\.eventID)
            after = last.position
        }
        print("legacy consumer benchmark: \(events) events of 200-byte payloads, \(rounds) rounds")

        // 1. Lookups by id.
        let bare = try BareLookup(path: path)
        var bareMicros: [Double] = []
        var storeMicros: [Double] = []
        for _ in 0..<rounds {
            let order = ids.shuffled()
            bareMicros.append(try microseconds(order.count) { for id in order { try bare.lookup(id) } })
            storeMicros.append(try await microsecondsAsync(order.count) {
                for id in order { guard try await sqlite.event(id: id) != nil else { throw BenchmarkError("\(id) not found") } }
            })
        }
        bare.close()
        print(String(format: "lookup by id, SQLite: bare C API %.1f µs, SQLiteEventStore.event(id:) %.1f µs: %.2f× the bare lookup (target ≤ 2×: %@)",
                     median(bareMicros), median(storeMicros), median(storeMicros) / median(bareMicros),
                     median(storeMicros) <= 2 * median(bareMicros) ? "met" : "NOT met"))

        // 2. The pattern over loopback.
        var logger = Logger(label: "bench")
        logger.logLevel = .warning
        for (name, store) in [("memory", memory as any EventStore), ("SQLite", sqlite as any EventStore)] {
            let server = GatewayServer(store: store, configuration: GatewayConfiguration(port: 0, logger: logger))
            let port = try await server.start()
            for fresh in [false, true] {
                var pattern: [Double] = []
                var floor: [Double] = []
                for _ in 0..<rounds {
                    pattern.append(try await microsecondsAsync(events) { try await catchUp(port: port, events: events, freshConnections: fresh) })
                    floor.append(try await microsecondsAsync(events) { try await health(port: port, requests: events + events / 20, freshConnections: fresh) })
                }
                print(String(format: "%@, %@: %.1f µs per event (page share + entry GET); GET /health floor for as many requests %.1f µs; pattern / floor %.2f×",
                             name, fresh ? "new connection per request" : "one keep-alive connection",
                             median(pattern), median(floor), median(pattern) / median(floor)))
            }
            if name == "memory" {
                try await compareWithNIOFloor(gatewayPort: port, events: events, rounds: rounds)
            }
            await server.stop()
        }
        try await sqlite.close()
    }

    /// Records every page and entry the consumer reads from the gateway, serves them from `NIOHTTPFloorServer`, and
    /// runs the pattern against both, alternating, over one keep-alive connection each.
    static func compareWithNIOFloor(gatewayPort: Int, events: Int, rounds: Int) async throws {
        let bodies = try await onThreadReturning { () throws -> [String: [UInt8]] in
            let client = BlockingHTTPClient(port: gatewayPort)
            var bodies: [String: [UInt8]] = [:]
            var offset = 0
            while offset < events {
                let target = "/events?offset=\(offset)"
                let page = try client.get(target).body
                bodies[target] = page
                let urls = entryPaths(page)
                guard !urls.isEmpty else { throw BenchmarkError("the feed ended at offset \(offset)") }
                for url in urls { bodies[url] = try client.get(url).body }
                offset += urls.count
            }
            return bodies
        }
        let floorServer = NIOHTTPFloorServer()
        let floorPort = try await floorServer.start(bodies: bodies)
        var gateway: [Double] = []
        var floor: [Double] = []
        for round in 0..<rounds {
            // Alternate which goes first, so that neither always runs on a warmer machine.
            let first = round.isMultiple(of: 2)
            if first { gateway.append(try await microsecondsAsync(events) { try await catchUp(port: gatewayPort, events: events, freshConnections: false) }) }
            floor.append(try await microsecondsAsync(events) { try await catchUp(port: floorPort, events: events, freshConnections: false) })
            if !first { gateway.append(try await microsecondsAsync(events) { try await catchUp(port: gatewayPort, events: events, freshConnections: false) }) }
        }
        try await floorServer.stop()
        print(String(format: "memory, one keep-alive connection: gateway %.1f µs per event, swift-nio's HTTP/1.1 floor (same bytes from a table) %.1f µs; gateway / floor %.2f×",
                     median(gateway), median(floor), median(gateway) / median(floor)))
    }

    static func onThreadReturning<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        let box = ResultBox<T>()
        try await onThread { box.value = try body() }
        guard let value = box.value else { throw BenchmarkError("the thread returned nothing") }
        return value
    }

    final class ResultBox<T: Sendable>: @unchecked Sendable {
        var value: T?  // written by the thread before the continuation resumes, read after
    }

    /// The consumer's loop: pages of 20 from offset 0, then every entry's `url` path, until `events` entries; on a
    /// thread of its own with a blocking client, as an external Go consumer calls.
    static func catchUp(port: Int, events: Int, freshConnections: Bool) async throws {
        try await onThread {
            let client = BlockingHTTPClient(port: port)
            func get(_ target: String) throws -> [UInt8] {
                defer { if freshConnections { client.disconnect() } }
                let (status, body) = try client.get(target)
                guard status == 200 else { throw BenchmarkError("GET \(target) answered \(status)") }
                return body
            }
            var offset = 0
            while offset < events {
                let urls = entryPaths(try get("/events?offset=\(offset)"))
                guard !urls.isEmpty else { throw BenchmarkError("the feed ended at offset \(offset)") }
                for url in urls { _ = try get(url) }
                offset += urls.count
            }
        }
    }

    static func health(port: Int, requests: Int, freshConnections: Bool) async throws {
        try await onThread {
            let client = BlockingHTTPClient(port: port)
            for _ in 0..<requests {
                defer { if freshConnections { client.disconnect() } }
                guard try client.get("/health").status == 200 else { throw BenchmarkError("/health failed") }
            }
        }
    }

    /// Runs `body` on a new thread and waits for it.
    static func onThread(_ body: @escaping @Sendable () throws -> Void) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let thread = Thread {
                do {
                    try body()
                    continuation.resume()
                } catch {
                    continuation.resume(throwing: error)
                }
            }
            thread.start()
        }
    }

    /// The paths of a legacy page's entry `url`s (`"url":"http://127.0.0.1:P/events/ID"`).
    static func entryPaths(_ body: [UInt8]) -> [String] {
        let text = String(decoding: body, as: UTF8.self)
        return text.matches(of: /"url":"http:\/\/[^\/"]+(\/events\/[^"]+)"/).map { String($0.1) }
    }

    static func fill(_ sqlite: SQLiteEventStore, _ memory: InMemoryEventStore, events: Int) async throws {
        var written = 0
        while written < events {
            let batch = (0..<min(100, events - written)).map { index in
                NewEvent(eventType: "account.AccountCredited", payload: FeedBenchmark.payload(written + index))
            }
            let request = AppendRequest(aggregateID: "acc-\(written / 100)", aggregateName: "Account", expectedVersion: .any, events: batch)
            _ = try await sqlite.append(request)
            _ = try await memory.append(request)
            written += batch.count
        }
    }

    static func microseconds(_ count: Int, _ body: () throws -> Void) throws -> Double {
        let start = ContinuousClock.now
        try body()
        return micros(ContinuousClock.now - start) / Double(count)
    }

    static func microsecondsAsync(_ count: Int, _ body: () async throws -> Void) async throws -> Double {
        let start = ContinuousClock.now
        try await body()
        return micros(ContinuousClock.now - start) / Double(count)
    }

    static func micros(_ duration: Duration) -> Double {
        Double(duration.components.seconds) * 1e6 + Double(duration.components.attoseconds) / 1e12
    }
}

/// An indexed lookup by event id with the SQLite C API on its own read-only connection: the floor for
/// `SQLiteEventStore.event(id:)` (the same statement and columns, the row's values copied out).
final class BareLookup {
    private var db: OpaquePointer?
    private var statement: OpaquePointer?

    init(path: String) throws {
        guard sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, nil) == SQLITE_OK,
            sqlite3_prepare_v2(db, "SELECT position, event_id, aggregate_id, aggregate_name, version, event_type, recorded_at, payload FROM events WHERE event_id = ?", -1, &statement, nil) == SQLITE_OK
        else { throw BenchmarkError("cannot open \(path) for the bare lookup") }
    }

    func lookup(_ id: String) throws {
        defer { sqlite3_reset(statement) }
        let transient = unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)
        _ = id.withCString { sqlite3_bind_text(statement, 1, $0, -1, transient) }
        guard sqlite3_step(statement) == SQLITE_ROW else { throw BenchmarkError("\(id) not found by the bare lookup") }
        func text(_ column: CInt) -> String { String(cString: sqlite3_column_text(statement, column)) }
        let position = sqlite3_column_int64(statement, 0)
        let strings = [text(1), text(2), text(3), text(5)]
        let version = sqlite3_column_int64(statement, 4) + sqlite3_column_int64(statement, 6)
        let count = Int(sqlite3_column_bytes(statement, 7))
        let payload = [UInt8](UnsafeRawBufferPointer(start: sqlite3_column_blob(statement, 7), count: count))
        if position < 0 || strings.isEmpty || version < 0 || payload.isEmpty { throw BenchmarkError("bad row for \(id)") }
    }

    func close() {
        sqlite3_finalize(statement)
        sqlite3_close(db)
    }
}
