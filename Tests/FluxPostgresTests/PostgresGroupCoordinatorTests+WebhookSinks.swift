import FluxCore
import FluxPostgres
import FluxTesting
import Foundation
import NIOCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A webhook sink on two `fluxgate serve` nodes sharing one PostgreSQL database (`PostgresWebhookSinks.swift`; this file
/// is `PostgresGroupCoordinatorTests+WebhookSinks.swift`): both run its deliverer, one node at a time delivers, that one
/// is SIGKILLed mid-run, and `clients/python/webhook_receiver.py` gets every
/// event, in order per aggregate. In `PostgresGroupCoordinatorTests` (serialized): two node-killing runs at once on two
/// cores make each node's heartbeats late, and the other run's timing checks fail.
extension PostgresGroupCoordinatorTests {
    static let receiver = TestPython.repositoryRoot.appendingPathComponent("clients/python/webhook_receiver.py")
    static let sinkSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

    static func logged(_ log: URL) throws -> [[String: Any]] {
        guard let text = try? String(contentsOf: log, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    /// Attempts of the sink `hook` on a node, from its `GET /metrics`.
    static func sinkAttempts(port: Int) async throws -> Int {
        let connection = try await RawTCPConnection.connect(port: port)
        try await connection.send("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        while try await connection.readMore() {}
        await connection.close()
        let text = connection.withBuffered { String(buffer: $0) }
        #expect(text.hasPrefix("HTTP/1.1 200"), "\(text.prefix(200))")
        return text.split(separator: "\n")
            .filter { $0.hasPrefix("fluxgate_sink_deliveries_total{") && $0.contains("sink=\"hook\"") }
            .compactMap { Double($0.split(separator: " ").last ?? "") }
            .reduce(0) { $0 + Int($1) }
    }

    @Test func twoNodesDeliverASinkFromOneAtATimeAndKillingItLosesNothing() async throws {
        let location = try await TestPostgres.shared.freshDatabase()
        let url = "postgres://\(location.username)@\(location.host):\(location.port)/\(location.database)"
        let store = try await PostgresEventStore.open(location)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fluxgate-pg-sink-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let log = directory.appendingPathComponent("received.jsonl")
        let (aggregates, perAggregate) = (100, 10)
        let total = aggregates * perAggregate
        try await withChildProcess(
            TestPython.executable,
            [Self.receiver.path, "--port", "0", "--secret", Self.sinkSecret, "--log", log.path, "--fail-rate", "0.1", "--slow", "1", "--seed", "3"]
        ) { receiver in
            let line = try await receiver.waitForLine(containing: "listening on", timeout: .seconds(60))
            let receiverPort = try #require(Int(line.split(separator: " ").last ?? ""))
            try await withFluxgate(["serve", "--port", "0", "--store", url]) { nodeA in
                try await withFluxgate(["serve", "--port", "0", "--store", url]) { nodeB in
                    let (portA, portB) = (try await Self.port(nodeA), try await Self.port(nodeB))
                    let created = try await ChildProcess.run(
                        try ChildProcess.fluxgateExecutable(),
                        ["sinks", "create", "hook", "--target", "http://127.0.0.1:\(receiverPort)/hooks", "--secret", Self.sinkSecret, "--concurrency", "8",
                         "--timeout", "0.5", "--backoff", "0.01", "--maximum-backoff", "0.1", "--maximum-attempts", "1000", "--url", "http://127.0.0.1:\(portA)"],
                        timeout: .seconds(60))
                    #expect(created.status == 0, "\(created.errorOutput)")
                    try await Self.appendRound(store, aggregates: aggregates, events: perAggregate)
                    try await Self.waitUntil("the receiver gets events") { ((try? Self.logged(log).count) ?? 0) >= 200 }
                    // One node delivers the sink (both run a deliverer): the other has attempted nothing.
                    let (attemptsA, attemptsB) = (try await Self.sinkAttempts(port: portA), try await Self.sinkAttempts(port: portB))
                    #expect((attemptsA == 0) != (attemptsB == 0), "one node delivers: A attempted \(attemptsA), B \(attemptsB)")
                    let (delivering, otherPort) = attemptsA > 0 ? (nodeA, portB) : (nodeB, portA)
                    delivering.signal(SIGKILL)
                    _ = await delivering.waitForExit(timeout: .seconds(30))
                    // The other takes every partition once the killed node's lease lapses, from their stored checkpoints.
                    try await Self.waitForCheckpoint(store, "sink.hook", total, within: .seconds(180))
                    #expect(try await Self.sinkAttempts(port: otherPort) > 0)
                }
            }
            let events = try Self.logged(log)
            #expect(Set(events.compactMap { $0["position"] as? Int }) == Set(1...total), "\(events.count) of \(total)")
            #expect(events.count == total, "each event logged once (repeats are dropped by webhook-id)")
            var last: [String: Int] = [:]
            var problems: [String] = []
            for event in events {
                let (aggregate, version) = (event["aggregate_id"] as? String ?? "?", event["aggregate_version"] as? Int ?? -1)
                if let previous = last[aggregate], previous >= version { problems.append("\(aggregate): \(version) after \(previous)") }
                last[aggregate] = version
            }
            #expect(problems.isEmpty, "\(problems.prefix(10))")
            #expect(!receiver.errorOutput.contains("bad signature"))
        }
        await store.close()
    }
}
