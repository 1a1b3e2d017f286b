import FluxConsumer
import FluxTesting
import Foundation
import Testing

@testable import fluxgate

/// `fluxgate serve` options from `FLUXGATE_*` variables: every option has one, the command line wins, the store URL
/// can come from a file, and a gateway started from the environment alone serves.
@Suite struct ServeEnvironmentTests {
    @Test func everyServeOptionHasAVariable() async throws {
        let help = try await ChildProcess.run(try ChildProcess.fluxgateExecutable(), ["serve", "--help"])
        let inHelp = Set(help.outputLines.joined(separator: "\n").matches(of: /--([a-z][a-z-]*)/).map { String($0.1) })
            .subtracting(["help", "version"])
        #expect(!inHelp.isEmpty)
        #expect(Set(ServeEnvironment.options.map(\.name)) == inHelp, "ServeEnvironment.options and serve --help disagree")
        #expect(ServeEnvironment.variable(for: "max-connections-per-address") == "FLUXGATE_MAX_CONNECTIONS_PER_ADDRESS")
    }

    @Test func theCommandLineWinsAndListsSplitOnCommas() throws {
        let expansion = try ServeEnvironment.expand(
            ["serve", "--port=9000", "--log-level", "debug"],
            environment: [
                "FLUXGATE_PORT": "abc",  // ignored: the command line names --port (its bad value never reaches the parser)
                "FLUXGATE_HOST": "0.0.0.0",
                "FLUXGATE_ALLOW_ORIGIN": "https://a.example, https://b.example,",
                "FLUXGATE_MAX_BODY_SIZE": "",  // empty counts as unset
                "FLUXGATE_TOKEN": "not a serve option",
            ]
        )
        #expect(
            expansion.arguments == [
                "serve", "--host", "0.0.0.0", "--allow-origin", "https://a.example", "--allow-origin", "https://b.example",
                "--port=9000", "--log-level", "debug",
            ]
        )
        #expect(expansion.variables == ["FLUXGATE_HOST", "FLUXGATE_ALLOW_ORIGIN"])
        // Other commands are left alone.
        #expect(try ServeEnvironment.expand(["tail", "http://x"], environment: ["FLUXGATE_HOST": "h"]).arguments == ["tail", "http://x"])
    }

    @Test func theStoreURLCanComeFromAFile() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("fluxgate-store-\(UUID())")
        defer { try? FileManager.default.removeItem(at: file) }
        try Data("postgres://fluxgate:s3cret@db:5432/fluxgate\n".utf8).write(to: file)
        let expansion = try ServeEnvironment.expand(["serve"], environment: ["FLUXGATE_STORE_FILE": file.path])
        #expect(expansion.arguments == ["serve", "--store", "postgres://fluxgate:s3cret@db:5432/fluxgate"])
        #expect(expansion.variables == ["FLUXGATE_STORE_FILE"])

        #expect(throws: ServeEnvironment.Failure.self) {
            try ServeEnvironment.expand(["serve"], environment: ["FLUXGATE_STORE_FILE": file.path, "FLUXGATE_STORE": "memory"])
        }
        #expect(throws: ServeEnvironment.Failure.self) {
            try ServeEnvironment.expand(["serve"], environment: ["FLUXGATE_STORE_FILE": file.path + ".missing"])
        }
        try Data("postgres://a\npostgres://b\n".utf8).write(to: file)
        #expect(throws: ServeEnvironment.Failure.self) {
            try ServeEnvironment.expand(["serve"], environment: ["FLUXGATE_STORE_FILE": file.path])
        }
        // --store on the command line: the file is not even read.
        #expect(try ServeEnvironment.expand(["serve", "--store", "memory"], environment: ["FLUXGATE_STORE_FILE": "/nonexistent"]).arguments == ["serve", "--store", "memory"])
    }

    /// A gateway configured only through its environment serves, logs which variables it used (not their values),
    /// and a bad value names the variables it may have come from.
    @Test func aGatewayStartsFromTheEnvironmentAlone() async throws {
        let tokens = FileManager.default.temporaryDirectory.appendingPathComponent("fluxgate-env-tokens-\(UUID()).json")
        defer { try? FileManager.default.removeItem(at: tokens) }
        try Data(#"{"tokens": [{"name": "ops", "token": "ops-token-0123456789", "scopes": ["read"]}]}"#.utf8).write(to: tokens)
        let environment = ["FLUXGATE_PORT": "0", "FLUXGATE_STORE": "memory", "FLUXGATE_TOKEN_FILE": tokens.path]
        try await withFluxgate(["serve"], environment: environment) { server in
            let line = try await server.waitForLine(containing: "listening")
            let port = try #require(line.firstMatch(of: /127\.0\.0\.1:(\d+)/).flatMap { Int($0.1) })
            let connection = try await HTTPConnection.connect(host: "127.0.0.1", port: port)
            #expect(try await connection.request(.GET, "/events?after=0").status == .unauthorized, "FLUXGATE_TOKEN_FILE applies")
            await connection.close()
            let log = server.outputLines.joined(separator: "\n") + server.errorOutput
            let used = try #require(log.split(separator: "\n").first { $0.contains("options from the environment") }, "\(log)")
            #expect(used.contains("FLUXGATE_PORT, FLUXGATE_STORE, FLUXGATE_TOKEN_FILE"))
            #expect(!used.contains(tokens.path), "values are not logged")
            server.signal(SIGINT)
            #expect(await server.waitForExit() == 0)
        }
        let bad = try await ChildProcess.run(try ChildProcess.fluxgateExecutable(), ["serve"], environment: ["FLUXGATE_PORT": "eighty"])
        #expect(bad.status != 0)
        #expect(bad.errorOutput.contains("FLUXGATE_PORT"), "\(bad.errorOutput)")
    }
}
