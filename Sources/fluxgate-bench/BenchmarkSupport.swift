import NIOCore
import FluxCore
import Foundation

// Shared by the benchmarks: option parsing, medians, report lines.

struct BenchmarkError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

func value(of option: String, in arguments: [String]) -> String? {
    guard let index = arguments.firstIndex(of: option), index + 1 < arguments.count else { return nil }
    return arguments[index + 1]
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    guard !sorted.isEmpty else { return 0 }
    return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}

func report(_ name: String, _ rates: [Double]) {
    let label = name.padding(toLength: max(name.count, 42), withPad: " ", startingAt: 0)
    print("  \(label) " + String(format: "median %10.0f events/s   (min %.0f, max %.0f)", median(rates), rates.min() ?? 0, rates.max() ?? 0))
}

/// `writers` concurrent tasks appending 1-event appends with `payload` to `store` until `duration` is up: one
/// stream per writer with exact expected versions, or all on one stream with `.any`. Returns appends per second
/// and how many were appended.
func concurrentAppends(
    to store: any EventWriter, writers: Int, oneStream: Bool = false, payload: EventPayload, duration: Duration
) async throws -> (rate: Double, count: Int) {
    let clock = ContinuousClock()
    let start = clock.now
    let deadline = start + duration
    let count = try await withThrowingTaskGroup(of: Int.self) { group in
        for writer in 0..<writers {
            group.addTask {
                var appended = 0
                while clock.now < deadline {
                    let expected: ExpectedVersion = oneStream ? .any : appended == 0 ? .noStream : .exact(Int64(appended - 1))
                    try await store.append(
                        AppendRequest(
                            aggregateID: oneStream ? "bench" : "bench-\(writer)", aggregateName: "Bench", expectedVersion: expected,
                            events: [NewEvent(eventType: "bench.Appended", payload: payload)]
                        )
                    )
                    appended += 1
                }
                return appended
            }
        }
        return try await group.reduce(0, +)
    }
    let elapsed = clock.now - start
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    return (Double(count) / seconds, count)
}

/// Takes the next complete unmasked server frame off `buffer` (the lean subscribers of the fan-out and catch-up
/// benchmarks read frames without our WebSocket layer); `nil` when the buffer holds only part of one.
func takeServerFrame(from buffer: inout ByteBuffer) -> (opcode: UInt8, payload: ByteBufferView)? {
    guard buffer.readableBytes >= 2 else { return nil }
    let start = buffer.readerIndex
    let first = buffer.getInteger(at: start, as: UInt8.self)!
    let second = buffer.getInteger(at: start + 1, as: UInt8.self)! & 0x7F
    var header = 2
    var length = Int(second)
    if second == 126 {
        guard buffer.readableBytes >= 4 else { return nil }
        length = Int(buffer.getInteger(at: start + 2, as: UInt16.self)!)
        header = 4
    } else if second == 127 {
        guard buffer.readableBytes >= 10 else { return nil }
        length = Int(buffer.getInteger(at: start + 2, as: UInt64.self)!)
        header = 10
    }
    guard buffer.readableBytes >= header + length, let payload = buffer.viewBytes(at: start + header, length: length) else { return nil }
    buffer.moveReaderIndex(forwardBy: header + length)
    return (first & 0x0F, payload)
}
