import FluxConsumer
import FluxTesting
import NIOCore
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The CLI as a user runs it: `fluxgate demo` and `fluxgate serve` as real processes.
@Suite struct FluxgateCLITests {
    @Test func demoRunsEndToEndOnTheEmbeddedStoreAndExits() async throws {
        try await withFluxgate(["demo"]) { demo in
            let status = await demo.waitForExit(timeout: .seconds(60))
            #expect(status == 0, "stderr: \(demo.errorOutput)")
            let output = demo.outputLines.joined(separator: "\n")
            #expect(output.contains("store sqlite:"), "the demo runs on the embedded SQLite store by default")
            #expect(output.contains("conflict detected"))
            #expect(output.contains("read model and aggregates agree"), "\(output.suffix(800))")
        }
    }

    /// `demo --serve` leaves something to explore: after its checks the gateway keeps serving the demo's events,
    /// the demo says where and how (web UI, curl, tail), and Ctrl-C ends it cleanly. Without it, the demo names the
    /// next step.
    @Test func demoServeKeepsTheGatewayServingItsEventsUntilCtrlC() async throws {
        try await withFluxgate(["demo", "--serve", "--store", "memory"]) { demo in
            let line = try await demo.waitForLine(containing: "keeps serving", timeout: .seconds(60))
            let match = try #require(line.firstMatch(of: /http:\/\/127\.0\.0\.1:(\d+)/), "\(line)")
            let port = try #require(Int(match.1))
            let output = demo.outputLines.joined(separator: "\n")
            for hint in ["web UI", "curl -s 'http://127.0.0.1:\(port)/events?after=0", "fluxgate tail http://127.0.0.1:\(port)"] {
                #expect(output.contains(hint), "\(output.suffix(1200))")
            }
            let connection = try await RawTCPConnection.connect(port: port)
            try await connection.send("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            while try await connection.readMore() {}
            let answer = connection.withBuffered { String(buffer: $0) }
            await connection.close()
            #expect(answer.hasPrefix("HTTP/1.1 200"), "\(answer)")
            #expect(!answer.contains("\"head\":0"), "the demo's events are there: \(answer)")
            demo.signal(SIGINT)
            #expect(await demo.waitForExit(timeout: .seconds(20)) == 0, "\(demo.errorOutput.suffix(1000))")
        }
        try await withFluxgate(["demo", "--store", "memory"]) { demo in
            #expect(await demo.waitForExit(timeout: .seconds(60)) == 0)
            #expect(demo.outputLines.contains { $0.contains("fluxgate demo --serve") }, "\(demo.outputLines.suffix(3))")
        }
    }

    @Test func serveStopsGracefullyOnSIGINT() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fluxgate-cli-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        try await withFluxgate(["serve", "--port", "0", "--store", "sqlite:\(directory.path)/e.sqlite"]) { server in
            _ = try await server.waitForLine(containing: "listening")
            server.signal(SIGINT)
            #expect(await server.waitForExit(timeout: .seconds(20)) == 0)
            _ = try await server.waitForLine(containing: "stopped")
        }
    }

    @Test func helpExplainsTheCommands() async throws {
        try await withFluxgate(["--help"]) { help in
            #expect(await help.waitForExit() == 0)
            let text = help.outputLines.joined(separator: "\n")
            #expect(text.contains("serve") && text.contains("demo"))
            #expect(!text.contains("append-loop"), "test-only commands stay hidden")
            #expect(!text.contains("echo-server") && !text.contains("echo-client"), "conformance testees are not user commands")
        }
    }

    /// Help text that wraps mid-example is hard to copy: every line of an "Examples:" block stays an indented example
    /// (or its indented continuation) at the width the help is printed with.
    @Test(arguments: ["serve", "tail", "demo", "import", "groups", "sinks"])
    func helpExamplesDoNotWrap(command: String) async throws {
        let run = try await ChildProcess.run(try ChildProcess.fluxgateExecutable(), [command, "--help"])
        #expect(run.status == 0)
        var inExamples = false
        for line in run.outputLines {
            if line.hasPrefix("USAGE:") { break }
            if line.hasPrefix("Examples:") { inExamples = true; continue }
            if line.isEmpty { inExamples = false; continue }
            if inExamples {
                #expect(line.hasPrefix("  "), "fluxgate \(command) --help: an example wrapped: \"\(line)\"")
            }
        }
    }

    /// A port in use is said in plain words, before the store is touched (no store file is made).
    @Test func aPortInUseIsSaidBeforeTheStoreIsOpened() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fluxgate-port-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        try await withFluxgate(["serve", "--port", "0", "--store", "memory"]) { holder in
            let line = try await holder.waitForLine(containing: "listening")
            let port = try #require(line.firstMatch(of: /127\.0\.0\.1:(\d+)/).flatMap { Int($0.1) })
            try await withFluxgate(["serve", "--port", "\(port)", "--store", "sqlite:\(directory.path)/events.sqlite"]) { second in
                #expect(await second.waitForExit(timeout: .seconds(30)) != 0)
                #expect(second.errorOutput.contains("port \(port) on 127.0.0.1 is in use"), "\(second.errorOutput)")
                #expect(!second.errorOutput.contains("errno"), "\(second.errorOutput)")
                #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("events.sqlite").path), "the store was not opened")
            }
        }
    }
}

@Suite struct FluxgateTailTests {
    @Test func tailPrintsTheBacklogThenLiveEventsAsJSONLines() async throws {
        try await withTestGateway { gateway in
            try await gateway.append("a", events: [("t.One", "1"), ("t.Two", "2"), ("t.One", "3")])
            try await withFluxgate([
                "tail", "http://127.0.0.1:\(gateway.port)", "--after", "1", "--event-type", "t.One", "--limit", "2",
            ]) { tail in
                _ = try await tail.waitForLine(containing: "\"position\":3")
                try await gateway.append("a", events: [("t.Two", "4"), ("t.One", "5")])
                #expect(await tail.waitForExit(timeout: .seconds(30)) == 0, "\(tail.errorOutput)")
                let positions = tail.outputLines.compactMap { line in
                    (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["position"] as? Int
                }
                #expect(positions == [3, 5])
            }
        }
    }

    /// Against a gateway that is not there, `tail` keeps retrying, and says so on stderr instead of sitting silent
    /// (which looks like an empty feed).
    @Test func tailSaysWhatItWaitsForWhenTheGatewayIsDown() async throws {
        // A port that was free a moment ago and has no listener now.
        let listener = try await RawTCPServer.listen()
        let closed = listener.port
        await listener.close()
        try await withFluxgate(["tail", "http://127.0.0.1:\(closed)"]) { tail in
            let line = try await tail.waitForLine(containing: "waiting for the gateway", timeout: .seconds(20))
            #expect(line.contains("http://127.0.0.1:\(closed)"), "\(line)")
            #expect(line.contains("connection refused"), "\(line)")
            #expect(tail.isRunning, "it keeps retrying")
            #expect(tail.outputLines.isEmpty)
        }
    }

    @Test func tailRejectsABadURL() async throws {
        try await withFluxgate(["tail", "not a url"]) { tail in
            #expect(await tail.waitForExit() != 0)
            #expect(tail.errorOutput.contains("URL"))
        }
    }

    /// Values from outside are range-checked before they become durations: an absurd --ping-interval is refused
    /// with a message, not converted.
    @Test func aPingIntervalOutOfRangeIsRefused() async throws {
        for value in ["0", "1e300", "nan", "-5"] {
            try await withFluxgate(["serve", "--port", "0", "--store", "memory", "--ping-interval", value]) { serve in
                #expect(await serve.waitForExit() != 0, "--ping-interval \(value)")
                #expect(serve.errorOutput.contains("--ping-interval"), "--ping-interval \(value): \(serve.errorOutput)")
            }
        }
    }

    /// The echo client's handshake timeout is range-checked too (the conformance suite raises it on a loaded machine).
    @Test func aHandshakeTimeoutOutOfRangeIsRefused() async throws {
        for value in ["0", "3601", "-1", "ten"] {
            try await withFluxgate(["echo-client", "--url", "ws://127.0.0.1:9/", "--handshake-timeout", value]) { client in
                #expect(await client.waitForExit() != 0, "--handshake-timeout \(value)")
                #expect(client.errorOutput.contains("--handshake-timeout"), "--handshake-timeout \(value): \(client.errorOutput)")
            }
        }
    }
}

/// `fluxgate` as one file to install, `--version`, and `fluxgate health` for container health checks.
@Suite struct FluxgateInstallTests {
    @Test func theBinaryAloneServesTheWebUI() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fluxgate-alone-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let copy = directory.appendingPathComponent("fluxgate")
        try FileManager.default.copyItem(at: try ChildProcess.fluxgateExecutable(), to: copy)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == ["fluxgate"])
        try await withChildProcess(copy, ["serve", "--port", "0", "--store", "memory"]) { server in
            let line = try await server.waitForLine(containing: "listening")
            let port = try #require(line.firstMatch(of: /127\.0\.0\.1:(\d+)/).flatMap { Int($0.1) })
            let connection = try await HTTPConnection.connect(host: "127.0.0.1", port: port)
            for path in ["/", "/ui/app.js", "/ui/style.css", "/ui/fluxgate.js", "/ui/favicon.svg"] {
                let answer = try await connection.request(.GET, path)
                #expect(answer.status == .ok, "\(path)")
                #expect(answer.body.readableBytes > 100, "\(path)")
            }
            await connection.close()

            let healthy = try await ChildProcess.run(copy, ["health", "http://127.0.0.1:\(port)"])
            #expect(healthy.status == 0, "\(healthy.errorOutput)")
            #expect(healthy.outputLines.joined().contains(#""status":"ok""#))
        }
    }

    @Test func versionAndAnUnreachableGateway() async throws {
        let version = try await ChildProcess.run(try ChildProcess.fluxgateExecutable(), ["--version"])
        #expect(version.status == 0)
        #expect(version.outputLines.first?.firstMatch(of: /^\d+\.\d+\.\d+/) != nil, "\(version.outputLines)")
        // Port 1 (tcpmux): nothing listens there on a test machine.
        let down = try await ChildProcess.run(try ChildProcess.fluxgateExecutable(), ["health", "http://127.0.0.1:1"])
        #expect(down.status == 1)
        #expect(down.errorOutput.contains("connection refused"), "\(down.errorOutput)")
        let bad = try await ChildProcess.run(try ChildProcess.fluxgateExecutable(), ["health", "ftp://x"])
        #expect(bad.status != 0 && bad.status != 1)
    }
}
