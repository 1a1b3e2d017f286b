import FluxCore
import FluxGateway
import FluxTesting
import Foundation
import Testing

/// The Python clients users run, against a gateway with access control: refused clearly without a token,
/// served with one.
@Suite struct PythonClientAccessTests {
    static let clients = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("clients/python")
    static let token = "python-reader-0123456789"

    /// A gateway over a store holding five events (stored first: nothing is left running when that fails).
    func gateway() async throws -> TestGateway {
        let store = InMemoryEventStore()
        for index in 0..<5 {
            try await store.append(
                AppendRequest(aggregateID: "a", aggregateName: "A", expectedVersion: .any, events: [NewEvent(eventType: "t.E", payload: EventPayload(trustedJSON: Array("\(index)".utf8)))])
            )
        }
        return try await TestGateway.start(
            store: store, accessControl: try await AccessControl(tokens: [.init(name: "python", token: Self.token, scopes: ["read"])])
        )
    }

    func run(_ script: String, _ arguments: [String]) async throws -> (status: Int32?, lines: [String], stderr: String) {
        let run = try await ChildProcess.run(
            TestPython.executable, [Self.clients.appendingPathComponent(script).path] + arguments, timeout: .seconds(60))
        return (run.status, run.outputLines, run.errorOutput)
    }

    @Test func pollerNeedsAndUsesItsToken() async throws {
        try await withTestGateway(await gateway()) { gateway in
            let offsetFile = FileManager.default.temporaryDirectory.appendingPathComponent("poll-\(UUID().uuidString).offset").path
            defer { try? FileManager.default.removeItem(atPath: offsetFile) }
            let base = ["http://127.0.0.1:\(gateway.port)", "--offset-file", offsetFile, "--once"]
            let refused = try await run("poll.py", base)
            #expect(refused.status == 2)
            #expect(refused.stderr.contains("refused the token (401)"), "\(refused.stderr)")
            let served = try await run("poll.py", base + ["--token", Self.token])
            #expect(served.status == 0, "\(served.stderr)")
            #expect(served.lines.count == 5)
        }
    }

    @Test func subscriberNeedsAndUsesItsToken() async throws {
        try await withTestGateway(await gateway()) { gateway in
            let offsetFile = FileManager.default.temporaryDirectory.appendingPathComponent("sub-\(UUID().uuidString).offset").path
            defer { try? FileManager.default.removeItem(atPath: offsetFile) }
            let base = ["ws://127.0.0.1:\(gateway.port)", "--offset-file", offsetFile, "--exit-after", "5"]
            let refused = try await run("subscribe.py", base)
            #expect(refused.status == 2)
            #expect(refused.stderr.contains("refused the token (401)"), "\(refused.stderr)")
            let served = try await run("subscribe.py", base + ["--token", Self.token])
            #expect(served.status == 0, "\(served.stderr)")
            #expect(served.lines.count == 5)
        }
    }
}
