import FluxConsumer
import FluxTesting
import Foundation
import Testing

/// `fluxgate serve --config FILE`: the file's options apply, flags override them, bad files are refused clearly.
@Suite struct ServeConfigFileTests {
    func write(_ json: String) throws -> URL {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("fluxgate-config-\(UUID()).json")
        try Data(json.utf8).write(to: file)
        return file
    }

    @Test func theFilesOptionsApplyAndFlagsOverrideThem() async throws {
        let tokens = try write(#"{"tokens": [{"name": "ops", "token": "ops-token-0123456789", "scopes": ["read"]}]}"#)
        let config = try write(#"{"port": 1, "store": "memory", "token-file": "\#(tokens.path)", "max-header-size": 2048, "log-level": "info"}"#)
        defer {
            try? FileManager.default.removeItem(at: tokens)
            try? FileManager.default.removeItem(at: config)
        }
        try await withFluxgate(["serve", "--config", config.path, "--port", "0"]) { server in
            let line = try await server.waitForLine(containing: "listening")
            let port = try #require(line.firstMatch(of: /127\.0\.0\.1:(\d+)/).flatMap { Int($0.1) })
            #expect(port != 1, "--port 0 overrode the file's port")
            let connection = try await HTTPConnection.connect(host: "127.0.0.1", port: port)
            #expect(try await connection.request(.GET, "/events?after=0").status == .unauthorized, "the file's token-file applies")
            await connection.close()
            let big = try await HTTPConnection.connect(host: "127.0.0.1", port: port)
            let answer = try await big.request(.GET, "/health", headers: [("X-Big", String(repeating: "x", count: 4000))])
            #expect(answer.status == .requestHeaderFieldsTooLarge, "the file's max-header-size applies")
            await big.close()
            server.signal(SIGINT)
            #expect(await server.waitForExit() == 0)
        }
    }

    @Test func badFilesAreRefusedWithTheReason() async throws {
        let notAnObject = try write("[1, 2]")
        let unknown = try write(#"{"no-such-option": 3}"#)
        defer {
            try? FileManager.default.removeItem(at: notAnObject)
            try? FileManager.default.removeItem(at: unknown)
        }
        for (file, message) in [(notAnObject.path, "is not a JSON object"), (unknown.path, "no-such-option"), ("/nonexistent.json", "cannot read the config file")] {
            try await withFluxgate(["serve", "--config", file]) { server in
                #expect(await server.waitForExit() != 0)
                #expect(server.errorOutput.contains(message), "\(server.errorOutput)")
            }
        }
    }

    @Test func theFilesSinksArePutAtStartAndABadOneStopsTheStart() async throws {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        let config = try write(#"{"port": 0, "store": "memory", "sinks": {"billing": {"url": "http://127.0.0.1:9/hooks", "secret": "\#(secret)", "concurrency": 3}}}"#)
        let missingSecret = try write(#"{"store": "memory", "sinks": {"billing": {"url": "http://127.0.0.1:9/hooks"}}}"#)
        let notAnObject = try write(#"{"store": "memory", "sinks": ["billing"]}"#)
        defer {
            for file in [config, missingSecret, notAnObject] { try? FileManager.default.removeItem(at: file) }
        }
        try await withFluxgate(["serve", "--config", config.path]) { server in
            let line = try await server.waitForLine(containing: "listening")
            let port = try #require(line.firstMatch(of: /127\.0\.0\.1:(\d+)/).flatMap { Int($0.1) })
            let connection = try await HTTPConnection.connect(host: "127.0.0.1", port: port)
            let answer = try await connection.request(.GET, "/sinks/billing")
            #expect(answer.status == .ok && answer.text.contains(#""concurrency":3"#), "\(answer.status) \(answer.text)")
            await connection.close()
            server.signal(SIGINT)
            #expect(await server.waitForExit() == 0)
        }
        for (file, message) in [(missingSecret.path, #"needs its "secret""#), (notAnObject.path, #""sinks" must be an object"#)] {
            try await withFluxgate(["serve", "--config", file]) { server in
                #expect(await server.waitForExit() != 0)
                #expect(server.errorOutput.contains(message), "\(server.errorOutput)")
            }
        }
        // The same from the command line, and from a file.
        try await withFluxgate(["serve", "--store", "memory", "--sinks", #"{"a": {"url": "gopher://x"}}"#]) { server in
            #expect(await server.waitForExit() != 0)
            #expect(server.errorOutput.contains("--sinks"), "\(server.errorOutput)")
        }
        try await withFluxgate(["serve", "--store", "memory", "--sinks-file", "/nonexistent-sinks.json"]) { server in
            #expect(await server.waitForExit() != 0)
            #expect(server.errorOutput.contains("cannot read --sinks-file"), "\(server.errorOutput)")
        }
        try await withFluxgate(["serve", "--store", "memory", "--sinks-key-file", "/nonexistent-sinks.key"]) { server in
            #expect(await server.waitForExit() != 0)
            #expect(server.errorOutput.contains("cannot read the sinks key file"), "\(server.errorOutput)")
        }
    }
}
