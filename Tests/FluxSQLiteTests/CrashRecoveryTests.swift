import FluxCore
import FluxSQLite
import FluxTesting
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Kills a child process appending in a loop (`fluxgate append-loop`) with SIGKILL and checks on reopen that
/// every append it acknowledged is stored and that positions are still dense.
@Suite struct CrashRecoveryTests {
    @Test func acknowledgedAppendsSurviveSIGKILL() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path("crash/events.sqlite")
        let executable = try ChildProcess.fluxgateExecutable()
        var acknowledged: [(position: Int64, eventID: String)] = []
        // Several rounds on the same file: each recovery must also survive the next crash.
        for round in 0..<3 {
            let child = try ChildProcess(executable, ["append-loop", "--path", path, "--writers", "8"])
            let target = acknowledged.count + 300
            let deadline = ContinuousClock.now + .seconds(120)
            while acks(child.outputLines).count + acknowledged.count < target {
                if ContinuousClock.now > deadline {
                    child.signal(SIGKILL)
                    Issue.record("round \(round): too few acks within 120 s; stderr: \(child.errorOutput.suffix(2000))")
                    return
                }
                if let status = await child.waitForExit(timeout: .zero) {
                    Issue.record("round \(round): append-loop exited with \(status); stderr: \(child.errorOutput.suffix(2000))")
                    return
                }
                try await Task.sleep(for: .milliseconds(10))
            }
            child.signal(SIGKILL)
            let status = await child.waitForExit(timeout: .seconds(30))
            #expect(status != nil, "the killed process must exit")
            try await Task.sleep(for: .milliseconds(100))  // let the pipe's last complete lines arrive
            acknowledged += acks(child.outputLines)

            let store = try SQLiteEventStore(path: path)
            let head = try await store.head()
            var stored: [Int64: String] = [:]
            var cursor = Position.start
            var expected: Int64 = 1
            while true {
                let page = try await store.read(after: cursor, limit: 1000)
                guard let last = page.last else { break }
                for event in page {
                    #expect(event.position.rawValue == expected, "round \(round): positions must be dense: \(expected) holds \(event.position)")
                    expected = event.position.rawValue + 1
                    stored[event.position.rawValue] = event.eventID
                }
                cursor = last.position
            }
            #expect(Int64(stored.count) == head.rawValue, "round \(round): positions 1...\(head) each once, read \(stored.count)")
            var lost = 0
            for ack in acknowledged where stored[ack.position] != ack.eventID {
                lost += 1
            }
            #expect(lost == 0, "round \(round): \(lost) of \(acknowledged.count) acknowledged appends are missing or moved")
            #expect(head.rawValue >= Int64(acknowledged.count))
            try await store.close()
        }
    }

    private func acks(_ lines: [String]) -> [(position: Int64, eventID: String)] {
        lines.compactMap { line in
            let parts = line.split(separator: " ")
            guard parts.count == 3, parts[0] == "ack", let position = Int64(parts[1]) else { return nil }
            return (position, String(parts[2]))
        }
    }
}
