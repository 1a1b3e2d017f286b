import FluxTesting
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The CLI as a user runs it: `fluxgate demo` and `fluxgate serve` as real processes.
@Suite struct FluxgateCLITests {
    @Test func demoRunsEndToEndOnTheEmbeddedStoreAndExits() async throws {
        let demo = try ChildProcess(try ChildProcess.fluxgateExecutable(), ["demo"])
        let status = await demo.waitForExit(timeout: .seconds(60))
        #expect(status == 0, "stderr: \(demo.errorOutput)")
        let output = demo.outputLines.joined(separator: "\n")
        #expect(output.contains("store sqlite:"), "the demo runs on the embedded SQLite store by default")
        #expect(output.contains("conflict detected"))
        #expect(output.contains("read model and aggregates agree"), "\(output.suffix(800))")
    }

    @Test func serveStopsGracefullyOnSIGINT() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fluxgate-cli-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let server = try ChildProcess(try ChildProcess.fluxgateExecutable(), ["serve", "--port", "0", "--store", "sqlite:\(directory.path)/e.sqlite"])
        _ = try await server.waitForLine(containing: "listening")
        server.signal(SIGINT)
        #expect(await server.waitForExit(timeout: .seconds(20)) == 0)
        _ = try await server.waitForLine(containing: "stopped")
    }

    @Test func helpExplainsTheCommands() async throws {
        let help = try ChildProcess(try ChildProcess.fluxgateExecutable(), ["--help"])
        #expect(await help.waitForExit() == 0)
        let text = help.outputLines.joined(separator: "\n")
        #expect(text.contains("serve") && text.contains("demo"))
        #expect(!text.contains("append-loop"), "test-only commands stay hidden")
    }
}

@Suite struct FluxgateTailTests {
    @Test func tailPrintsTheBacklogThenLiveEventsAsJSONLines() async throws {
        let gateway = try await TestGateway.start()
        defer { Task { await gateway.stop() } }
        try await gateway.append("a", events: [("t.One", "1"), ("t.Two", "2"), ("t.One", "3")])
        let tail = try ChildProcess(try ChildProcess.fluxgateExecutable(), [
            "tail", "http://127.0.0.1:\(gateway.port)", "--after", "1", "--event-type", "t.One", "--limit", "2",
        ])
        _ = try await tail.waitForLine(containing: "\"position\":3")
        try await gateway.append("a", events: [("t.Two", "4"), ("t.One", "5")])
        #expect(await tail.waitForExit(timeout: .seconds(30)) == 0, "\(tail.errorOutput)")
        let positions = tail.outputLines.compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["position"] as? Int
        }
        #expect(positions == [3, 5])
    }

    @Test func tailRejectsABadURL() async throws {
        let tail = try ChildProcess(try ChildProcess.fluxgateExecutable(), ["tail", "not a url"])
        #expect(await tail.waitForExit() != 0)
        #expect(tail.errorOutput.contains("URL"))
    }
}
