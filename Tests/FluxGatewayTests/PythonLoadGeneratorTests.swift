import FluxCore
import FluxTesting
import Foundation
import Testing

/// `clients/python/loadgen.py` on a small scale: it must run, and every subscriber must get every event once.
@Suite struct PythonLoadGeneratorTests {
    static let script = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("clients/python/loadgen.py")

    @Test func smallRunDeliversEveryEventOnceToEverySubscriber() async throws {
        try await withTestGateway { gateway in
            let out = FileManager.default.temporaryDirectory.appendingPathComponent("loadgen-\(UUID().uuidString).json")
            defer { try? FileManager.default.removeItem(at: out) }
            try await withChildProcess(TestPython.executable, [
                Self.script.path, "http://127.0.0.1:\(gateway.port)", "--subscribers", "8", "--writers", "2",
                "--rate", "100", "--duration", "2", "--deflate", "--out", out.path,
            ]) { process in
                #expect(await process.waitForExit(timeout: .seconds(120)) == 0, "\(process.errorOutput.suffix(800))")
                let result = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: out)) as? [String: Any])
                #expect(result["exactly_once_in_order"] as? Bool == true)
                let appended = try #require(result["appended"] as? Int)
                // How many appends fit in two seconds depends on the machine's load; correctness does not.
                #expect(appended > 0, "the writers appended nothing: \(process.errorOutput.suffix(800))")
                #expect(result["deliveries"] as? Int == appended * 8)
            }
        }
    }
}
