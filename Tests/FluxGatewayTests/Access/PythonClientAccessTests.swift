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

    func gateway() async throws -> TestGateway {
        let gateway = try await TestGateway.start(
            accessControl: try await AccessControl(tokens: [.init(name: "python", token: Self.token, scopes: ["read"])])
        )
        for index in 0..<5 {
            try await gateway.store.append(
                AppendRequest(aggregateID: "a", aggregateName: "A", expectedVersion: .any, events: [NewEvent(eventType: "t.E", payload: EventPayload(trustedJSON: Array("\(index)".utf8)))])
            )
        }
        return gateway
    }

    func run(_ script: String, _ arguments: [String]) async throws -> (status: Int32?, lines: [String], stderr: String) {
        let process = try ChildProcess(URL(fileURLWithPath: "/usr/bin/env"), ["python3", Self.clients.appendingPathComponent(script).path] + arguments)
        let status = await process.waitForExit(timeout: .seconds(60))
        return (status, process.outputLines, process.errorOutput)
    }

    @Test func pollerNeedsAndUsesItsToken() async throws {
        let gateway = try await gateway()
        defer { Task { await gateway.stop() } }
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

    @Test func subscriberNeedsAndUsesItsToken() async throws {
        let gateway = try await gateway()
        defer { Task { await gateway.stop() } }
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
