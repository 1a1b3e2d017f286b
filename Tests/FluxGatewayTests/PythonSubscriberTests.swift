import FluxCore
import FluxGateway
import FluxTesting
import Foundation
import Logging
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `clients/python/subscribe.py` — an independent WebSocket implementation (the `websockets` package) — as a
/// real subscriber of the push channel.
@Suite struct PythonSubscriberTests {
    static let script = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("clients/python/subscribe.py")

    /// Runs `body` with a subscriber of `port` keeping its offset in `offsetFile`, stopped when `body` ends.
    private func withSubscriber(port: Int, offsetFile: String, extra: [String] = [], _ body: (ChildProcess) async throws -> Void) async throws {
        let arguments = [Self.script.path, "ws://127.0.0.1:\(port)", "--offset-file", offsetFile] + extra
        try await withChildProcess(TestPython.executable, arguments, body)
    }

    private func positions(_ lines: [String]) -> [Int] {
        lines.compactMap { line in (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["position"] as? Int }
    }

    private func append(_ store: any EventStore, _ count: Int, writer: Int = 0) async throws {
        for index in 0..<count {
            try await store.append(AppendRequest(aggregateID: "w\(writer)-\(index % 3)", aggregateName: "A", expectedVersion: .any,
                                                 events: [NewEvent(eventType: "t.E", payload: EventPayload(trustedJSON: Array("{\"i\":\(index)}".utf8)))]))
        }
    }

    private func tempFile() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("sub-\(UUID().uuidString).offset").path
    }

    @Test(arguments: [false, true])
    func catchUpThenLiveUnderConcurrentAppends(deflate: Bool) async throws {
        try await withTestGateway { gateway in
            let offsetFile = tempFile()
            defer { try? FileManager.default.removeItem(atPath: offsetFile) }
            try await append(gateway.store, 100)
            try await withSubscriber(port: gateway.port, offsetFile: offsetFile, extra: ["--exit-after", "500"] + (deflate ? ["--deflate"] : [])) { process in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for writer in 0..<4 { group.addTask { try await append(gateway.store, 100, writer: writer + 1) } }
                    try await group.waitForAll()
                }
                let status = await process.waitForExit(timeout: .seconds(60))
                #expect(status == 0, "\(process.errorOutput.suffix(500))")
                #expect(positions(process.outputLines) == Array(1...500))
            }
        }
    }

    @Test func aKilledSubscriberResumesFromItsCheckpointWithExactlyTheMissedEvents() async throws {
        try await withTestGateway { gateway in
            let offsetFile = tempFile()
            defer { try? FileManager.default.removeItem(atPath: offsetFile) }
            try await append(gateway.store, 300)
            try await withSubscriber(port: gateway.port, offsetFile: offsetFile) { first in
                _ = try await first.waitForLine(containing: "\"position\":150")
                first.signal(SIGKILL)
                _ = await first.waitForExit()
            }
            let saved = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: offsetFile))) as? [String: Any]
            let checkpoint = try #require(saved?["position"] as? Int)
            #expect(checkpoint >= 150 && checkpoint <= 300)
            try await append(gateway.store, 50)
            try await withSubscriber(port: gateway.port, offsetFile: offsetFile, extra: ["--exit-after", "\(350 - checkpoint)"]) { second in
                #expect(await second.waitForExit(timeout: .seconds(60)) == 0)
                #expect(positions(second.outputLines) == Array((checkpoint + 1)...350), "exactly what it had not handled")
            }
        }
    }

    @Test func aGatewayRestartIsSurvived() async throws {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let store = InMemoryEventStore()
        let firstServer = GatewayServer(store: store, configuration: GatewayConfiguration(port: 0, logger: logger))
        let port = try await firstServer.start()
        try await withTeardown({ await firstServer.stop() }) {
            let offsetFile = tempFile()
            defer { try? FileManager.default.removeItem(atPath: offsetFile) }
            try await append(store, 20)
            try await withSubscriber(port: port, offsetFile: offsetFile, extra: ["--exit-after", "60"]) { process in
                _ = try await process.waitForLine(containing: "\"position\":20")
                await firstServer.stop()  // subscribers get 1001
                _ = try await process.waitForLine(containing: "1001")
                try await append(store, 20)
                let secondServer = GatewayServer(store: store, configuration: GatewayConfiguration(port: port, logger: logger))
                try await secondServer.start()
                try await withTeardown({ await secondServer.stop() }) {
                    try await append(store, 20)
                    #expect(await process.waitForExit(timeout: .seconds(60)) == 0, "\(process.errorOutput.suffix(500))")
                    #expect(positions(process.outputLines) == Array(1...60))
                }
            }
        }
    }

    @Test func anEpochMismatchStopsTheSubscriberWithAnError() async throws {
        try await withTestGateway { gateway in
            let offsetFile = tempFile()
            defer { try? FileManager.default.removeItem(atPath: offsetFile) }
            try #"{"position": 0, "epoch": "some-other-store"}"#.write(toFile: offsetFile, atomically: true, encoding: .utf8)
            try await withSubscriber(port: gateway.port, offsetFile: offsetFile) { process in
                #expect(await process.waitForExit(timeout: .seconds(30)) == 2)
                #expect(process.errorOutput.contains("another store"))
            }
        }
    }
}
