import FluxTesting
import Foundation
import Testing

/// `fluxgate serve`'s Graphite options: bad values are usage errors (exit 64) naming the option and what to give;
/// the settings are read from `--config` files and `FLUXGATE_GRAPHITE*` variables like every serve option.
@Suite struct ServeGraphiteOptionsTests {
    func serve(_ arguments: [String], environment: [String: String] = [:]) async throws -> ChildProcess.Outcome {
        try await ChildProcess.run(
            try ChildProcess.fluxgateExecutable(), ["serve", "--port", "0", "--store", "memory"] + arguments, environment: environment)
    }

    @Test(arguments: [
        (["--graphite", "nohost"], "--graphite nohost has no port"),
        (["--graphite", "host:0"], "the port must be 1…65535, got 0"),
        (["--graphite", "host:99999"], "the port must be 1…65535, got 99999"),
        (["--graphite", "host:abc"], "the port must be a number"),
        (["--graphite", "carbon:2003", "--graphite-interval", "0"], "--graphite-interval must be between 1 and 3600 seconds, got 0"),
        (["--graphite", "carbon:2003", "--graphite-interval", "3601"], "--graphite-interval must be between 1 and 3600 seconds"),
        (["--graphite", "carbon:2003", "--graphite-prefix", ""], "--graphite-prefix: the Graphite prefix must be"),
        (["--graphite", "carbon:2003", "--graphite-prefix", "prod gw"], "letters, digits, _ and -"),
        (["--graphite", "carbon:2003", "--graphite-prefix", "a..b"], "letters, digits, _ and -"),
        (["--graphite-interval", "5"], "go with --graphite HOST:PORT"),
    ])
    func badValuesAreUsageErrors(arguments: [String], message: String) async throws {
        let run = try await serve(arguments)
        #expect(run.status == 64, "\(arguments): \(run.errorOutput)")
        #expect(run.errorOutput.contains(message), "\(arguments): \(run.errorOutput)")
    }

    @Test func theSettingsComeFromTheEnvironmentAndTheConfigFileToo() async throws {
        let fromEnvironment = try await serve([], environment: ["FLUXGATE_GRAPHITE": "carbon:2003", "FLUXGATE_GRAPHITE_INTERVAL": "0"])
        #expect(fromEnvironment.status == 64)
        #expect(fromEnvironment.errorOutput.contains("--graphite-interval must be between 1 and 3600 seconds"), "\(fromEnvironment.errorOutput)")
        #expect(fromEnvironment.errorOutput.contains("FLUXGATE_GRAPHITE_INTERVAL"), "the variable is named: \(fromEnvironment.errorOutput)")

        let file = FileManager.default.temporaryDirectory.appendingPathComponent("serve-\(UUID()).json")
        try Data(#"{"graphite": "carbon:99999", "graphite-prefix": "prod.gw-1"}"#.utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let fromFile = try await serve(["--config", file.path])
        #expect(fromFile.status == 64)
        #expect(fromFile.errorOutput.contains("the port must be 1…65535, got 99999"), "\(fromFile.errorOutput)")
    }
}
