import FluxConsumer
import FluxCore
import FluxGateway
import Foundation
import Logging
import NIOCore
import Synchronization

/// Fan-out: N push-channel subscribers, one writer at a steady rate; event deliveries/s and append→receive
/// latency (p50/p99). Gateway and subscribers share this process and its 2 cores, so the figures include
/// the subscribers' own cost; subscribers count envelopes without decoding them and sample one latency per
/// message (the first event's send time).
///
/// ```
/// swift run -c release fluxgate-bench fanout [--subscribers 1000] [--rate 500] [--seconds 10]
/// ```
enum FanOutBenchmark {
    static func run(arguments: [String]) async throws {
        let subscribers = Int(value(of: "--subscribers", in: arguments) ?? "") ?? 1000
        let rate = Double(value(of: "--rate", in: arguments) ?? "") ?? 500
        let seconds = Double(value(of: "--seconds", in: arguments) ?? "") ?? 10
        var logger = Logger(label: "bench")
        logger.logLevel = .warning
        let store = InMemoryEventStore()
        let server = GatewayServer(store: store, configuration: GatewayConfiguration(port: 0, logger: logger))
        let port = try await server.start()

        let tally = Tally(subscribers: subscribers)
        let eventMarker = Array(#"{"event_id""#.utf8)
        let sentMarker = Array(#""sent":"#.utf8)
        var connections: [Task<Void, any Error>] = []
        for index in 0..<subscribers {
            connections.append(Task {
                let connection = try await PushChannelConnection.connect(host: "127.0.0.1", port: port, target: "/events/subscribe?after=0", deflate: false)
                tally.ready.withLock { $0 += 1 }
                while !Task.isCancelled, let text = try await connection.nextText() {
                    let bytes = text.readableBytesView
                    let events = occurrences(of: eventMarker, in: bytes)
                    if events == 0 { continue }
                    if let sent = firstInteger(after: sentMarker, in: bytes) {
                        let latency = Double(wallNanoseconds() - sent) / 1e6
                        tally.latencies.withLock { $0.append(latency) }
                    }
                    tally.counts.withLock { $0[index] += events }
                }
                await connection.close()
            })
            if index % 100 == 99 { try await Task.sleep(for: .milliseconds(20)) }
        }
        while tally.ready.withLock({ $0 }) < subscribers { try await Task.sleep(for: .milliseconds(50)) }
        try await Task.sleep(for: .milliseconds(500))
        print("fan-out benchmark: \(subscribers) subscribers, 1 writer at \(Int(rate)) events/s for \(seconds) s (in one process, 2 cores)")

        let total = Int(rate * seconds)
        let started = ContinuousClock.now
        let interval = Duration.nanoseconds(Int64(1e9 / rate))
        var next = started
        for _ in 0..<total {
            let payload = EventPayload(trustedJSON: Array(#"{"sent":\#(wallNanoseconds()),"pad":"\#(String(repeating: "x", count: 150))"}"#.utf8))
            _ = try await store.append(AppendRequest(aggregateID: "fan", aggregateName: "Fan", expectedVersion: .any, events: [NewEvent(eventType: "bench.Tick", payload: payload)]))
            next += interval
            if next > .now { try await Task.sleep(until: next, clock: .continuous) }
        }
        let expected = total * subscribers
        let deadline = ContinuousClock.now + .seconds(60)
        while tally.counts.withLock({ $0.reduce(0, +) }) < expected, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        let elapsed = ContinuousClock.now - started
        let delivered = tally.counts.withLock { $0.reduce(0, +) }
        let complete = tally.counts.withLock { $0.allSatisfy { $0 == total } }
        for connection in connections { connection.cancel() }
        await server.stop()
        let samples = tally.latencies.withLock { $0.sorted() }
        let elapsedSeconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        func percentile(_ p: Double) -> Double { samples.isEmpty ? 0 : samples[min(samples.count - 1, Int(p * Double(samples.count)))] }
        print(String(format: "  deliveries: %d of %d (every subscriber got every event: %@)", delivered, expected, complete ? "yes" : "NO"))
        print(String(format: "  deliveries/s: %.0f over %.1f s; append→receive latency p50 %.1f ms, p99 %.1f ms, max %.1f ms (%d samples)",
                     Double(delivered) / elapsedSeconds, elapsedSeconds, percentile(0.5), percentile(0.99), samples.last ?? 0, samples.count))
    }

    /// What the subscribers saw, shared with their tasks.
    final class Tally: Sendable {
        let counts: Mutex<[Int]>
        let latencies = Mutex([Double]())
        let ready = Mutex(0)
        init(subscribers: Int) { counts = Mutex([Int](repeating: 0, count: subscribers)) }
    }

    static func wallNanoseconds() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec)
    }

    static func occurrences(of marker: [UInt8], in bytes: ByteBufferView) -> Int {
        var count = 0
        var index = bytes.startIndex
        let first = marker[0]
        while let found = bytes[index...].firstIndex(of: first) {
            if bytes.distance(from: found, to: bytes.endIndex) >= marker.count, bytes[found..<(found + marker.count)].elementsEqual(marker) {
                count += 1
                index = found + marker.count
            } else {
                index = found + 1
            }
        }
        return count
    }

    static func firstInteger(after marker: [UInt8], in bytes: ByteBufferView) -> Int64? {
        var index = bytes.startIndex
        while let found = bytes[index...].firstIndex(of: marker[0]) {
            if bytes.distance(from: found, to: bytes.endIndex) >= marker.count, bytes[found..<(found + marker.count)].elementsEqual(marker) {
                var value: Int64 = 0
                var cursor = found + marker.count
                while cursor < bytes.endIndex, bytes[cursor] >= 0x30, bytes[cursor] <= 0x39 {
                    value = value * 10 + Int64(bytes[cursor] - 0x30)
                    cursor += 1
                }
                return value
            }
            index = found + 1
        }
        return nil
    }
}
