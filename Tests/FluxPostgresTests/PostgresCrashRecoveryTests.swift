import FluxCore
import FluxPostgres
import FluxTesting
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Two processes ("nodes") append to one PostgreSQL database in a loop (`fluxgate append-loop --store postgres://…`)
/// and are killed with SIGKILL; every append either acknowledged is stored at the position it was acknowledged with,
/// and positions are still dense — also after a second crash on the same database.
@Suite struct PostgresCrashRecoveryTests {
    @Test func acknowledgedAppendsOfTwoNodesSurviveSIGKILL() async throws {
        let location = try await TestPostgres.shared.freshDatabase()
        let url = "postgres://\(location.username)@\(location.host):\(location.port)/\(location.database)"
        let executable = try ChildProcess.fluxgateExecutable()
        var acknowledged: [(position: Int64, eventID: String)] = []
        for round in 0..<2 {
            let nodes = try (0..<2).map { _ in try ChildProcess(executable, ["append-loop", "--store", url, "--writers", "4"]) }
            let target = acknowledged.count + 400
            let deadline = ContinuousClock.now + .seconds(120)
            while nodes.map({ acks($0.outputLines).count }).reduce(0, +) + acknowledged.count < target {
                for node in nodes {
                    if let status = await node.waitForExit(timeout: .zero) {
                        nodes.forEach { $0.signal(SIGKILL) }
                        Issue.record("round \(round): append-loop exited with \(status); stderr: \(node.errorOutput.suffix(2000))")
                        return
                    }
                }
                if ContinuousClock.now > deadline {
                    nodes.forEach { $0.signal(SIGKILL) }
                    Issue.record("round \(round): too few acks within 120 s; stderr: \(nodes.map { $0.errorOutput.suffix(1000) })")
                    return
                }
                try await Task.sleep(for: .milliseconds(20))
            }
            nodes.forEach { $0.signal(SIGKILL) }
            for node in nodes { #expect(await node.waitForExit(timeout: .seconds(30)) != nil, "a killed node must exit") }
            try await Task.sleep(for: .milliseconds(100))  // the pipes' last complete lines
            acknowledged += nodes.flatMap { acks($0.outputLines) }

            let store = try await PostgresEventStore.open(location)
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
            let lost = acknowledged.filter { stored[$0.position] != $0.eventID }.count
            #expect(lost == 0, "round \(round): \(lost) of \(acknowledged.count) acknowledged appends are missing or moved")
            #expect(Set(acknowledged.map(\.position)).count == acknowledged.count, "no position acknowledged twice")
            await store.close()
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
