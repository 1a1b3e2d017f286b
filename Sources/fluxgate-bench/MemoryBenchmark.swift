import FluxConsumer
import FluxTesting
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// The gateway's memory ceiling: `fluxgate serve` in a child process under sustained load — N live push-channel
/// subscribers, appenders posting large events as fast as they can, pollers following the feed with payloads, and
/// one subscriber that never reads — its resident memory sampled every 200 ms; then the load stops and the memory
/// is sampled while it settles. Several rounds show whether it comes back down or ratchets up.
///
/// ```
/// swift build -c release --product fluxgate
/// swift run -c release fluxgate-bench memory [--subscribers 1000] [--seconds 20] [--event-bytes 8192]
///     [--appenders 4] [--pollers 4] [--rounds 2] [--settle 10] [--store sqlite|memory]
/// ```
enum MemoryBenchmark {
    static func run(arguments: [String]) async throws {
        let subscribers = Int(value(of: "--subscribers", in: arguments) ?? "") ?? 1000
        let seconds = Double(value(of: "--seconds", in: arguments) ?? "") ?? 20
        let eventBytes = Int(value(of: "--event-bytes", in: arguments) ?? "") ?? 8192
        let appenders = Int(value(of: "--appenders", in: arguments) ?? "") ?? 4
        let pollers = Int(value(of: "--pollers", in: arguments) ?? "") ?? 4
        let rounds = Int(value(of: "--rounds", in: arguments) ?? "") ?? 2
        let settle = Double(value(of: "--settle", in: arguments) ?? "") ?? 10
        let storeKind = value(of: "--store", in: arguments) ?? "sqlite"
        let eventsPerAppend = Int(value(of: "--events-per-append", in: arguments) ?? "") ?? 16

        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fluxgate-memory-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = storeKind == "memory" ? "memory" : "sqlite:\(directory.path)/events.sqlite"
        let gateway = try ChildProcess(try ChildProcess.fluxgateExecutable(), ["serve", "--port", "0", "--store", store, "--log-level", "info"])
        defer { gateway.signal(SIGKILL) }
        let line = try await gateway.waitForLine(containing: "listening", timeout: .seconds(60))
        guard let match = line.firstMatch(of: /127\.0\.0\.1:(\d+)/), let port = Int(match.1) else {
            throw BenchmarkError("no port in \(line)")
        }
        let pid = gateway.processIdentifier
        try await Task.sleep(for: .seconds(1))
        let baseline = residentMiB(pid) ?? 0
        print("memory benchmark: fluxgate serve --store \(storeKind) in a child process; per round \(subscribers) live subscribers + 1 that never reads, "
            + "\(appenders) appenders of \(eventsPerAppend) \(eventBytes)-byte events at a time at full speed, \(pollers) pollers with payloads, for \(seconds) s; then \(settle) s idle")
        print(String(format: "  baseline: %.1f MiB resident", baseline))

        for round in 1...rounds {
            let tally = FanOutBenchmark.Tally(subscribers: subscribers)
            let health = try await HTTPConnection.connect(host: "127.0.0.1", port: port)
            let status = try await health.request(.GET, "/health")
            await health.close()
            let head = (try JSONSerialization.jsonObject(with: Data(status.body.readableBytesView)) as? [String: Any])?["head"] as? Int ?? 0
            var channels: [any Channel] = []
            for index in 0..<subscribers {
                let handler = LeanSubscriber(index: index, tally: tally, eventMarker: Array(#"{"event_id""#.utf8), sentMarker: Array(#""sent":"#.utf8))
                let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                    .channelInitializer { channel in channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(handler) } }
                    .connect(host: "127.0.0.1", port: port).get()
                try await channel.writeAndFlush(ByteBuffer(string: upgradeRequest(port: port, query: "after=\(head)")))
                channels.append(channel)
                if index % 100 == 99 { try await Task.sleep(for: .milliseconds(20)) }
            }
            // The subscriber that never reads: its socket buffers fill, then the gateway must hold nothing more for it.
            let stalled = try await RawTCPConnection.connect(port: port, receiveBuffer: 4096)
            try await stalled.send(upgradeRequest(port: port, query: "after=0"))

            let payload = #"{"sent":0,"pad":""# + String(repeating: "x", count: max(0, eventBytes - 20)) + #""}"#
            let event = #"{"event_type": "load.Big", "payload": \#(payload)}"#
            let events = Array(repeating: event, count: eventsPerAppend).joined(separator: ",")
            let body = #"{"aggregate_name": "Load", "expected_version": "any", "events": [\#(events)]}"#
            let deadline = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
            let counters = Counters()
            var peak = 0.0
            try await withThrowingTaskGroup(of: Void.self) { group in
                for writer in 0..<appenders {
                    group.addTask {
                        let connection = try await HTTPConnection.connect(host: "127.0.0.1", port: port)
                        while ContinuousClock.now < deadline {
                            let response = try await connection.request(
                                .POST, "/streams/load-\(writer)", headers: [("Content-Type", "application/json")], body: ByteBuffer(string: body))
                            guard response.status == .created else { throw BenchmarkError("append: \(response.status)") }
                            counters.appended.add(eventsPerAppend, ordering: .relaxed)
                        }
                        await connection.close()
                    }
                }
                for _ in 0..<pollers {
                    group.addTask {
                        let connection = try await HTTPConnection.connect(host: "127.0.0.1", port: port)
                        var after: Int64 = 0
                        while ContinuousClock.now < deadline {
                            let response = try await connection.request(.GET, "/events?after=\(after)&limit=1000&embed=payload")
                            guard response.status == .ok,
                                let object = try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any],
                                let events = object["events"] as? [[String: Any]]
                            else { throw BenchmarkError("poll: \(response.status)") }
                            counters.polled.add(events.count, ordering: .relaxed)
                            if let last = events.last?["position"] as? Int64 { after = last } else { try await Task.sleep(for: .milliseconds(50)) }
                        }
                        await connection.close()
                    }
                }
                group.addTask {
                    while ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(200)) }
                }
                while ContinuousClock.now < deadline {
                    peak = max(peak, residentMiB(pid) ?? 0)
                    try await Task.sleep(for: .milliseconds(200))
                }
                try await group.waitForAll()
            }
            let delivered = tally.counts.withLock { $0.reduce(0, +) }
            for channel in channels { channel.close(promise: nil) }
            await stalled.close()
            var settled = residentMiB(pid) ?? 0
            let settleDeadline = ContinuousClock.now + .milliseconds(Int64(settle * 1000))
            while ContinuousClock.now < settleDeadline {
                try await Task.sleep(for: .milliseconds(200))
                settled = residentMiB(pid) ?? 0
                peak = max(peak, settled)
            }
            let appends = counters.appended.load(ordering: .relaxed)
            print(String(
                format: "  round %d: %d events appended (%.0f MB), %d deliveries to live subscribers, %d events polled; resident peak %.1f MiB (+%.1f), after %.0f s idle %.1f MiB (+%.1f; %@)",
                round, appends, Double(appends * eventBytes) / 1e6, delivered, counters.polled.load(ordering: .relaxed), peak, peak - baseline, settle, settled,
                settled - baseline, residentBreakdown(pid)))
        }
    }

    final class Counters: Sendable {
        let appended = Atomic<Int>(0)
        let polled = Atomic<Int>(0)
    }

    static func upgradeRequest(port: Int, query: String) -> String {
        "GET /events/subscribe?\(query) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    }

    /// What the resident memory is made of: anonymous (heap, buffers) and file-backed (the binary, mapped files).
    static func residentBreakdown(_ pid: Int32) -> String {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return "?" }
        func field(_ name: String) -> Double {
            guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix(name + ":") }) else { return 0 }
            return (Double(line.split(separator: " ").dropFirst().first ?? "") ?? 0) / 1024
        }
        return String(format: "anonymous %.1f, file %.1f MiB", field("RssAnon"), field("RssFile"))
    }

    /// A process's resident memory in MiB, from `/proc/PID/status`.
    static func residentMiB(_ pid: Int32) -> Double? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
            let kib = Double(line.split(separator: " ").dropFirst().first ?? "")
        else { return nil }
        return kib / 1024
    }
}
