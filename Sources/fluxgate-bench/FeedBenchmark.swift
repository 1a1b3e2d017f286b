import FluxConsumer
import FluxCore
import FluxGateway
import FluxSQLite
import Foundation
import Logging
import NIOCore

/// Feed read throughput: events/s one client pulls through `/events?after=…&limit=1000&embed=payload`
/// (200-byte payloads) over loopback from the SQLite store, beside a baseline in the same run: the same
/// pages read straight from the store, no HTTP and no JSON.
enum FeedBenchmark {
    static func run(arguments: [String]) async throws {
        let events = Int(value(of: "--events", in: arguments) ?? "") ?? 200_000
        let rounds = Int(value(of: "--rounds", in: arguments) ?? "") ?? 5
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fluxgate-feed-bench-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try SQLiteEventStore(path: directory.appendingPathComponent("events.sqlite").path, durability: .normal)

        try await fill(store, events: events)
        print("feed benchmark: \(events) events of 200-byte payloads in SQLite, pages of 1000, \(rounds) rounds")

        var logger = Logger(label: "bench")
        logger.logLevel = .warning
        let server = GatewayServer(store: store, configuration: GatewayConfiguration(port: 0, logger: logger))
        let port = try await server.start()

        var storeRates: [Double] = []
        var feedRates: [Double] = []
        var decodedRates: [Double] = []
        for _ in 0..<rounds {
            storeRates.append(try await timed(events) {
                var after = Position.start
                while true {
                    let page = try await store.read(after: after, limit: 1000)
                    guard let last = page.last else { break }
                    after = last.position
                }
            })
            feedRates.append(try await timed(events) {
                let connection = try await HTTPConnection.connect(host: "127.0.0.1", port: port)
                var after = 0
                var bytes = 0
                while after < events {
                    let response = try await connection.request(.GET, "/events?after=\(after)&limit=1000&embed=payload")
                    guard response.status == .ok else { throw BenchmarkError("feed answered \(response.status)") }
                    bytes += response.body.readableBytes
                    after += 1000  // positions are dense: a full page of 1000 ends at after + 1000
                }
                await connection.close()
                _ = bytes
            })
            decodedRates.append(try await timed(events) {
                let poller = FeedPoller(host: "127.0.0.1", port: port, pageSize: 1000, waitSeconds: 0)
                var seen = 0
                while seen < events {
                    let page = try await poller.nextPage()
                    seen += page.events.count
                    if page.events.isEmpty { throw BenchmarkError("feed ended early at \(seen)") }
                }
                await poller.close()
            })
        }
        await server.stop()
        try await store.close()

        report("store.read pages, no HTTP (baseline)", storeRates)
        report("HTTP feed, raw pull", feedRates)
        report("HTTP feed, pull + decode (FeedPoller)", decodedRates)
        print(String(format: "ratio HTTP raw pull / store baseline: %.2f; target ≥ 100,000 events/s: %@",
                     median(feedRates) / median(storeRates), median(feedRates) >= 100_000 ? "met" : "NOT met"))
    }

    /// Appends `events` events with 200-byte payloads, 1000 per append.
    static func fill(_ store: SQLiteEventStore, events: Int) async throws {
        var written = 0
        while written < events {
            let batch = (0..<min(1000, events - written)).map { index in
                NewEvent(eventType: "bench.Happened", payload: payload(written + index))
            }
            _ = try await store.append(AppendRequest(aggregateID: "bench-\(written / 1000)", aggregateName: "Bench", expectedVersion: .any, events: batch))
            written += batch.count
        }
    }

    /// A 200-byte JSON payload: `{"n":<number>,"pad":"xxx…"}`.
    static func payload(_ number: Int) -> EventPayload {
        let head = #"{"n":\#(number),"pad":""#
        let json = head + String(repeating: "x", count: 200 - head.utf8.count - 2) + #""}"#
        return EventPayload(trustedJSON: Array(json.utf8))
    }

    static func timed(_ count: Int, _ body: () async throws -> Void) async throws -> Double {
        let start = ContinuousClock.now
        try await body()
        let elapsed = ContinuousClock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return Double(count) / seconds
    }
}

