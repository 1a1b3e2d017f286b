import FluxConsumer
import FluxCore
import FluxGateway
import FluxSQLite
import Foundation
import Logging
import NIOCore
import FluxTesting
import Synchronization

/// Consumer groups: events/s handled (trivially) and acknowledged by 1, 4 and 16 WebSocket members of one group,
/// until the group's checkpoint reaches the head, beside a plain push subscription that reads and acknowledges the
/// same events in the same run; an HTTP pull member with `max=100`; and the time from a member's connection ending
/// abruptly (as when its process is killed) to the first redelivered event at another member.
///
/// ```
/// swift run -c release fluxgate-bench groups [--events 100000] [--aggregates 1000] [--rounds 3] [--memory]
///     [--members 1,4,16] [--no-pull]    (what to measure; e.g. `--members 4 --no-pull` under a profiler)
/// ```
enum GroupBenchmark {
    static func run(arguments: [String]) async throws {
        let events = Int(value(of: "--events", in: arguments) ?? "") ?? 100_000
        let aggregates = Int(value(of: "--aggregates", in: arguments) ?? "") ?? 1000
        let rounds = Int(value(of: "--rounds", in: arguments) ?? "") ?? 3
        let memberCounts = (value(of: "--members", in: arguments) ?? "1,4,16").split(separator: ",").compactMap { Int($0) }.filter { (1...1000).contains($0) }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fluxgate-group-bench-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let store: any EventStore & ConsumerGroupStore =
            arguments.contains("--memory") ? InMemoryEventStore() : try SQLiteEventStore(path: directory.appendingPathComponent("events.sqlite").path)
        // Aggregates interleaved: each takes 10 consecutive positions per round of appends.
        var written = 0
        while written < events {
            for aggregate in 0..<aggregates where written < events {
                let count = min(10, events - written)
                let batch = (0..<count).map { FeedBenchmark.payload(written + $0) }.map { NewEvent(eventType: "bench.Happened", payload: $0) }
                try await store.append(AppendRequest(aggregateID: "agg-\(aggregate)", aggregateName: "Bench", expectedVersion: .any, events: batch))
                written += count
            }
        }
        let storeName = store is InMemoryEventStore ? "memory" : "SQLite"
        print("consumer group benchmark: \(events) events of 200-byte payloads over \(aggregates) aggregates in \(storeName), \(rounds) rounds")
        var logger = Logger(label: "bench")
        logger.logLevel = .warning
        let server = GatewayServer(store: store, configuration: GatewayConfiguration(port: 0, logger: logger))
        let port = try await server.start()

        var plain: [Double] = []
        var members: [Int: [Double]] = [:]
        var pulled: [Double] = []
        var group = 0
        for _ in 0..<rounds {
            plain.append(try await FeedBenchmark.timed(events) {
                let connection = try await PushChannelConnection.connect(host: "127.0.0.1", port: port, target: "/events/subscribe?after=0", deflate: false)
                var seen = 0
                while seen < events {
                    guard let message = try await connection.next() else { throw BenchmarkError("the push channel closed after \(seen) events") }
                    guard case .events(_, let batch) = message, let last = batch.last else { continue }
                    seen += batch.count
                    try await connection.acknowledge(last.position)
                }
                await connection.close()
            })
            for count in memberCounts {
                group += 1
                let name = "bench-\(group)"
                _ = try await store.createConsumerGroup(try ConsumerGroupDefinition(name: name))
                members[count, default: []].append(try await FeedBenchmark.timed(events) {
                    try await withThrowingTaskGroup(of: Void.self) { tasks in
                        for index in 0..<count {
                            tasks.addTask {
                                let member = try await GroupMember.connect(host: "127.0.0.1", port: port, group: name, member: "m\(index)", credit: 1000)
                                while let batch = try await member.nextBatch() {
                                    try await member.acknowledge(batch.map(\.event.position))
                                }
                            }
                        }
                        try await waitForCheckpoint(store, name, Position(Int64(events)))
                        tasks.cancelAll()
                    }
                })
            }
            guard !arguments.contains("--no-pull") else { continue }
            group += 1
            let pullName = "bench-\(group)"
            _ = try await store.createConsumerGroup(try ConsumerGroupDefinition(name: pullName))
            pulled.append(try await FeedBenchmark.timed(events) {
                let connection = try await HTTPConnection.connect(host: "127.0.0.1", port: port)
                var seen = 0
                while seen < events {
                    let answer = try await connection.request(.POST, "/groups/\(pullName)/fetch?member=p&max=100&wait=1")
                    let positions = try pulledPositions(answer)
                    seen += positions.count
                    guard !positions.isEmpty else { continue }
                    let body = ByteBuffer(string: #"{"member":"p","positions":[\#(positions.map(String.init).joined(separator: ","))]}"#)
                    let acked = try await connection.request(.POST, "/groups/\(pullName)/ack", headers: [("Content-Type", "application/json")], body: body)
                    guard acked.status == .ok else { throw BenchmarkError("ack answered \(acked.status)") }
                }
                await connection.close()
            })
        }
        let redelivery = try await redeliveryTimes(store: store, port: port, samples: 5)
        let joining = try await joinTimes(store: store, port: port, samples: 5)
        await server.stop()
        if let sqlite = store as? SQLiteEventStore { try await sqlite.close() }

        report("plain push subscription, read and acknowledged (baseline)", plain)
        for count in memberCounts { report("group, \(count) WebSocket member\(count == 1 ? "" : "s"), settled to the checkpoint", members[count] ?? []) }
        if !pulled.isEmpty { report("group, 1 HTTP pull member, max=100", pulled) }
        if let four = members[4], !four.isEmpty {
            let ratio = median(four) / median(plain)
            print(String(format: "ratio 4 members / plain subscription: %.2f; target ≥ 0.50: %@", ratio, ratio >= 0.5 ? "met" : "NOT met"))
        }
        let sorted = redelivery.sorted()
        print(String(format: "redelivery after a member's connection ends abruptly: median %.1f ms (min %.1f, max %.1f, %d samples)",
                      median(redelivery) * 1000, (sorted.first ?? 0) * 1000, (sorted.last ?? 0) * 1000, redelivery.count))
        let joined = joining.sorted()
        print(String(format: "a member joining a group whose other member is at its credit: first event after %.1f ms (median; min %.1f, max %.1f, %d samples)",
                      median(joining) * 1000, (joined.first ?? 0) * 1000, (joined.last ?? 0) * 1000, joining.count))
    }

    static func waitForCheckpoint(_ store: any ConsumerGroupStore, _ name: String, _ target: Position) async throws {
        let deadline = ContinuousClock.now + .seconds(600)
        while try await (store.consumerGroup(named: name)?.checkpoint ?? .start) < target {
            guard ContinuousClock.now < deadline else { throw BenchmarkError("group \(name) did not reach \(target) within 600 s") }
            try await Task.sleep(for: .milliseconds(2))
        }
    }

    static func pulledPositions(_ response: HTTPResponse) throws -> [Int64] {
        guard response.status == .ok,
            let json = try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any]
        else { throw BenchmarkError("fetch answered \(response.status)") }
        return (json["events"] as? [[String: Any]] ?? []).compactMap { (($0["event"] as? [String: Any])?["position"] as? NSNumber)?.int64Value }
    }

    /// Seconds from a member's connection (the WebSocket handshake included) to its first event, while the group's
    /// only other member holds its whole credit and more events wait.
    static func joinTimes(store: any EventStore & ConsumerGroupStore, port: Int, samples: Int) async throws -> [Double] {
        var times: [Double] = []
        for sample in 0..<samples {
            let name = "join-\(sample)"
            _ = try await store.createConsumerGroup(try ConsumerGroupDefinition(name: name, start: try await store.head()))
            for aggregate in 0..<20 {
                try await store.append(AppendRequest(
                    aggregateID: "join-\(sample)-\(aggregate)", aggregateName: "Bench", expectedVersion: .any,
                    events: [NewEvent(eventType: "bench.Happened", payload: FeedBenchmark.payload(aggregate))]))
            }
            let busy = try await GroupMember.connect(host: "127.0.0.1", port: port, group: name, member: "busy", credit: 10)
            guard let held = try await busy.nextBatch(), !held.isEmpty else { throw BenchmarkError("the busy member got nothing") }
            let started = ContinuousClock.now
            let joining = try await GroupMember.connect(host: "127.0.0.1", port: port, group: name, member: "joining", credit: 10)
            guard try await joining.nextEvent() != nil else { throw BenchmarkError("the joining member got nothing") }
            let elapsed = started.duration(to: .now)
            times.append(Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
            await joining.close()
            await busy.close()
        }
        return times
    }

    /// Seconds from a member's connection closing without a Close frame to the first redelivered event at a member
    /// that waits beside it.
    static func redeliveryTimes(store: any EventStore & ConsumerGroupStore, port: Int, samples: Int) async throws -> [Double] {
        var times: [Double] = []
        for sample in 0..<samples {
            let name = "redelivery-\(sample)"
            _ = try await store.createConsumerGroup(try ConsumerGroupDefinition(name: name, start: try await store.head()))
            try await store.append(AppendRequest(
                aggregateID: "doomed-\(sample)", aggregateName: "Bench", expectedVersion: .any,
                events: [NewEvent(eventType: "bench.Happened", payload: FeedBenchmark.payload(sample))]))
            // The doomed member speaks just enough WebSocket to be leased the event (a raw socket), then its
            // connection ends with no Close frame, as a killed process's does.
            let doomed = try await RawTCPConnection.connect(port: port)
            try await doomed.send(
                "GET /groups/\(name)/subscribe?member=doomed&credit=10 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                    + "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
            guard try await doomed.readUntil(#""attempt":1"#) != nil else { throw BenchmarkError("the doomed member got no event") }
            let waiting = Task { () -> (attempt: Int, at: ContinuousClock.Instant) in
                let survivor = try await GroupMember.connect(host: "127.0.0.1", port: port, group: name, member: "survivor", credit: 10)
                guard let event = try await survivor.nextEvent() else { throw BenchmarkError("the survivor's connection closed") }
                let at = ContinuousClock.now
                await survivor.close()
                return (event.attempt, at)
            }
            try await Task.sleep(for: .milliseconds(300))  // the survivor is connected, its fetch waiting at the gateway
            let killed = ContinuousClock.now
            await doomed.close()
            let (attempt, at) = try await waiting.value
            guard attempt == 2 else { throw BenchmarkError("the survivor got attempt \(attempt), not a redelivery") }
            let elapsed = killed.duration(to: at)
            times.append(Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
        }
        return times
    }
}
