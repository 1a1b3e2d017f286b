import FluxCore
import FluxTesting
import Foundation
import Testing

/// `clients/python/poll.py` (the legacy-style poller users run) against a real gateway.
@Suite struct PythonPollerTests {
    static let script = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("clients/python/poll.py")

    private func runPoller(port: Int, offsetFile: String, extra: [String] = []) async throws -> (status: Int32?, lines: [String], stderr: String) {
        let arguments = [Self.script.path, "http://127.0.0.1:\(port)", "--offset-file", offsetFile, "--once"] + extra
        let run = try await ChildProcess.run(TestPython.executable, arguments, timeout: .seconds(60))
        return (run.status, run.outputLines, run.errorOutput)
    }

    @Test func pollsEverythingKeepsItsOffsetAndResumes() async throws {
        try await withTestGateway { gateway in
            let offsetFile = FileManager.default.temporaryDirectory.appendingPathComponent("poll-\(UUID().uuidString).offset").path
            defer { try? FileManager.default.removeItem(atPath: offsetFile) }
            for index in 0..<1200 {
                try await gateway.store.append(AppendRequest(aggregateID: "a\(index % 4)", aggregateName: "A", expectedVersion: .any,
                                                             events: [NewEvent(eventType: index % 2 == 0 ? "t.Even" : "t.Odd", payload: EventPayload(trustedJSON: Array("{\"i\":\(index)}".utf8)))]))
            }
            let first = try await runPoller(port: gateway.port, offsetFile: offsetFile)
            #expect(first.status == 0, "\(first.stderr)")
            let positions = first.lines.compactMap { line in
                (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["position"] as? Int
            }
            #expect(positions == Array(1...1200))
            try await gateway.store.append(AppendRequest(aggregateID: "late", aggregateName: "A", expectedVersion: .any, events: [NewEvent(eventType: "t.Even", payload: .null)]))
            let second = try await runPoller(port: gateway.port, offsetFile: offsetFile)
            #expect(second.lines.count == 1, "only the missed event: \(second.lines.count) lines")
            #expect(second.lines.first?.contains("\"position\":1201") == true)

            try await withTestGateway { otherStore in
                let mismatch = try await runPoller(port: otherStore.port, offsetFile: offsetFile)
                #expect(mismatch.status == 2)
                #expect(mismatch.stderr.contains("epoch"))
            }
        }
    }
}
