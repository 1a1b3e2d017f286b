import FluxConsumer
import FluxTesting
import Foundation
import NIOCore
import NIOHTTP1

#if canImport(Glibc)
import Glibc
#endif

/// `fluxgate serve` in a process of its own, so that an attack's cost shows in that process's memory and
/// descriptors (and a crash is the child's, not the test runner's).
final class ChildGateway {
    let process: ChildProcess
    let port: Int

    private init(process: ChildProcess, port: Int) {
        self.process = process
        self.port = port
    }

    /// Starts a gateway on a free port with the in-memory store; `descriptorLimit` runs it under `ulimit -n`.
    static func start(_ arguments: [String] = [], descriptorLimit: Int? = nil) async throws -> ChildGateway {
        let executable = try ChildProcess.fluxgateExecutable()
        let serve = ["serve", "--port", "0", "--store", "memory", "--log-level", "info"] + arguments
        let process: ChildProcess
        if let descriptorLimit {
            let quoted = ([executable.path] + serve).map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
            process = try ChildProcess(URL(fileURLWithPath: "/bin/sh"), ["-c", "ulimit -n \(descriptorLimit) && exec \(quoted)"])
        } else {
            process = try ChildProcess(executable, serve)
        }
        do {
            let line = try await process.waitForLine(containing: "listening", timeout: .seconds(60))
            guard let match = line.firstMatch(of: /127\.0\.0\.1:(\d+)/), let port = Int(match.1) else {
                throw TestFailure("no port in \(line)")
            }
            return ChildGateway(process: process, port: port)
        } catch {
            await process.stop(grace: .zero)
            throw error
        }
    }

    /// The process's resident memory, in MiB (from `/proc/PID/status`); `nil` once it has exited.
    func residentMiB() -> Double? {
        guard let status = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
            let kib = Double(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
        else { return nil }
        return kib / 1024
    }

    /// Descriptors the process has open now.
    func openDescriptors() -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(process.processIdentifier)/fd").count) ?? 0
    }

    var isRunning: Bool { kill(process.processIdentifier, 0) == 0 && residentMiB() != nil }

    /// One request on a new connection; a gateway that does not answer within 60 s fails the test.
    func request(_ method: HTTPMethod, _ target: String, headers: [(String, String)] = [], json: String? = nil) async throws -> HTTPResponse {
        let connection = try await HTTPConnection.connect(host: "127.0.0.1", port: port)
        connection.responseTimeout = .seconds(60)
        var headers = headers
        if json != nil { headers.append(("Content-Type", "application/json")) }
        let response = try await connection.request(method, target, headers: headers, body: json.map { ByteBuffer(string: $0) })
        await connection.close()
        return response
    }

    /// Appends `count` events of about `payloadBytes` each, 100 to an append.
    func seed(events count: Int, payloadBytes: Int, headers: [(String, String)] = []) async throws {
        let payload = #"{"text": ""# + String(repeating: "x", count: payloadBytes) + #""}"#
        var appended = 0
        while appended < count {
            let batch = min(100, count - appended)
            let events = (0..<batch).map { _ in #"{"event_type": "t.Seeded", "payload": \#(payload)}"# }.joined(separator: ",")
            let response = try await request(
                .POST, "/streams/seed-\(appended / 100)", headers: headers,
                json: #"{"aggregate_name": "Seed", "expected_version": "any", "events": [\#(events)]}"#
            )
            guard response.status == .created else { throw TestFailure("seeding: \(response.status) \(response.text.prefix(200))") }
            appended += batch
        }
    }

    /// Kills the gateway (an attack's aftermath is not worth a graceful stop) and waits until it is reaped.
    func stop() async {
        await process.stop(grace: .zero)
    }
}
