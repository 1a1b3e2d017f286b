import FluxConsumer
import FluxCore
import FluxGateway
import FluxSQLite
import Foundation
import Logging

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
        }
        await server.stop()
        try await store.close()
        report("store.read pages of 500, no network (baseline)", storeRates)
        report("push channel catch-up, decoded, checked", pushRates)
        print(String(format: "ratio push channel / store baseline: %.2f; target ≥ 200,000 events/s: %@",
                     median(pushRates) / median(storeRates), median(pushRates) >= 200_000 ? "met" : "NOT met"))
    }
}
