import FluxConsumer
import NIOCore
import FluxTesting
import Foundation
import Testing

/// `fluxgate serve` with access-control options: unusable files are refused at startup with the reason; a token
/// file protects the gateway it starts.
@Suite struct ServeAccessOptionsTests {
    /// Runs `body` with `fluxgate serve ARGUMENTS` (in memory, on a free port), stopped when `body` ends.
    func serve(_ arguments: [String], _ body: (ChildProcess) async throws -> Void) async throws {
        try await withFluxgate(["serve", "--port", "0", "--store", "memory"] + arguments, body)
    }

    @Test func unusableOptionsAreRefusedWithTheReason() async throws {
        try await serve(["--token-file", "/nonexistent/tokens.json"]) { missing in
            #expect(await missing.waitForExit() != 0)
            #expect(missing.errorOutput.contains("cannot read the token file /nonexistent/tokens.json"), "\(missing.errorOutput)")
        }
        try await serve(["--jwt-issuer", "https://id.example"]) { issuerOnly in
            #expect(await issuerOnly.waitForExit() != 0)
            #expect(issuerOnly.errorOutput.contains("need a key"), "\(issuerOnly.errorOutput)")
        }
        let secret = FileManager.default.temporaryDirectory.appendingPathComponent("short-\(UUID()).secret")
        try Data("too short\n".utf8).write(to: secret)
        defer { try? FileManager.default.removeItem(at: secret) }
        try await serve(["--jwt-secret-file", secret.path]) { short in
            #expect(await short.waitForExit() != 0)
            #expect(short.errorOutput.contains("at least 32 bytes"), "\(short.errorOutput)")
        }
    }

    @Test func aTokenFileProtectsTheGateway() async throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("tokens-\(UUID()).json")
        try Data(#"{"tokens": [{"name": "ops", "token": "ops-token-0123456789", "scopes": ["read", "write"]}]}"#.utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        try await serve(["--token-file", file.path]) { server in
            let line = try await server.waitForLine(containing: "listening")
            let port = try #require(line.firstMatch(of: /127\.0\.0\.1:(\d+)/).flatMap { Int($0.1) })
            let connection = try await HTTPConnection.connect(host: "127.0.0.1", port: port)
            #expect(try await connection.request(.GET, "/events?after=0").status == .unauthorized)
            #expect(try await connection.request(.GET, "/events?after=0", headers: [("Authorization", "Bearer ops-token-0123456789")]).status == .ok)
            let body = ByteBuffer(string: #"{"aggregate_name": "A", "expected_version": "any", "events": [{"event_type": "t.E", "payload": 1}]}"#)
            let appended = try await connection.request(
                .POST, "/streams/a", headers: [("Authorization", "Bearer ops-token-0123456789"), ("Content-Type", "application/json")], body: body
            )
            #expect(appended.status == .created)
            await connection.close()

            // fluxgate tail: with the token it prints the event; without, it stops with the reason.
            try await withFluxgate(["tail", "http://127.0.0.1:\(port)", "--token", "ops-token-0123456789", "--limit", "1"]) { tail in
                #expect(await tail.waitForExit() == 0, "\(tail.errorOutput)")
                #expect(tail.outputLines.count == 1 && tail.outputLines.first?.contains("\"position\":1") == true)
            }
            try await withFluxgate(["tail", "http://127.0.0.1:\(port)", "--limit", "1"]) { refused in
                #expect(await refused.waitForExit() != 0)
                #expect(refused.errorOutput.contains("refused the access token"), "\(refused.errorOutput)")
            }
            server.signal(SIGINT)
            #expect(await server.waitForExit() == 0)
        }
    }
}
