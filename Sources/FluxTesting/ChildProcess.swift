import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A child process for end-to-end tests: the real `fluxgate` binary, started, read line by line, signalled.
public final class ChildProcess: Sendable {
    private final class Output: Sendable {
        let lines = Mutex<[String]>([])
        let errorText = Mutex<String>("")
        let pending = Mutex<Data>(Data())
        /// Output streams read to their end (0, 1 or 2): what the process wrote is all in `lines` and `errorText`.
        let streamsAtEnd = Atomic<Int>(0)
    }

    private let process: Process
    private let output = Output()

    /// The `fluxgate` executable built next to the running test bundle, or the one `FLUXGATE_TEST_EXECUTABLE`
    /// names (to run the end-to-end tests against another build, e.g. a release build or an older commit).
    public static func fluxgateExecutable() throws -> URL {
        if let path = ProcessInfo.processInfo.environment["FLUXGATE_TEST_EXECUTABLE"], !path.isEmpty {
            guard FileManager.default.isExecutableFile(atPath: path) else {
                throw ConformanceFailure(description: "FLUXGATE_TEST_EXECUTABLE=\(path) is not an executable file")
            }
            return URL(fileURLWithPath: path)
        }
        var candidates: [URL] = []
        let argument0 = URL(fileURLWithPath: CommandLine.arguments[0])
        candidates.append(argument0.deletingLastPathComponent().appendingPathComponent("fluxgate"))
        candidates.append(Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("fluxgate"))
        candidates.append(Bundle.main.bundleURL.appendingPathComponent("fluxgate"))
        for candidate in candidates where FileManager.default.isExecutableFile(atPath: candidate.path) {
            return candidate
        }
        throw ConformanceFailure(description: "the fluxgate executable was not found next to the tests (looked at \(candidates.map(\.path))); build it with `swift build`")
    }

    /// Starts `executable` with `arguments`; stdout is collected by line, stderr as text.
    public init(_ executable: URL, _ arguments: [String]) throws {
        process = Process()
        process.executableURL = executable
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["SWIFT_BACKTRACE"] = "enable=no"
        process.environment = environment
        let stdout = Pipe()
        let stderr = Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        process.standardInput = FileHandle.nullDevice
        let output = self.output
        stdout.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            guard !data.isEmpty else {
                handle.readabilityHandler = nil
                output.streamsAtEnd.add(1, ordering: .releasing)
                return
            }
            let complete: [String] = output.pending.withLock { buffer in
                buffer.append(data)
                var result: [String] = []
                while let newline = buffer.firstIndex(of: 0x0A) {
                    result.append(String(decoding: buffer[buffer.startIndex..<newline], as: UTF8.self))
                    buffer.removeSubrange(buffer.startIndex...newline)
                }
                return result
            }
            if !complete.isEmpty { output.lines.withLock { $0.append(contentsOf: complete) } }
        }
        stderr.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            guard !data.isEmpty else {
                handle.readabilityHandler = nil
                output.streamsAtEnd.add(1, ordering: .releasing)
                return
            }
            output.errorText.withLock { $0 += String(decoding: data, as: UTF8.self) }
        }
        try process.run()
    }

    public var processIdentifier: Int32 { process.processIdentifier }

    /// Every stdout line read so far.
    public var outputLines: [String] { output.lines.withLock { $0 } }

    /// What the process wrote to stderr so far.
    public var errorOutput: String { output.errorText.withLock { $0 } }

    /// Waits for a stdout or stderr line containing `text`; returns it.
    public func waitForLine(containing text: String, timeout: Duration = .seconds(30)) async throws -> String {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let line = outputLines.first(where: { $0.contains(text) }) { return line }
            if let line = errorOutput.split(separator: "\n").first(where: { $0.contains(text) }) { return String(line) }
            if !process.isRunning {
                throw ConformanceFailure(description: "the process exited (\(process.terminationStatus)) before printing \"\(text)\"; stderr: \(errorOutput.suffix(2000))")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw ConformanceFailure(description: "no line containing \"\(text)\" within \(timeout); stderr: \(errorOutput.suffix(2000))")
    }

    /// Sends a signal (SIGTERM, SIGINT, SIGKILL…).
    public func signal(_ signal: Int32) {
        kill(process.processIdentifier, signal)
    }

    /// Waits for the process to exit and for what it wrote to be read (`outputLines` and `errorOutput` are then
    /// complete, unless a child it left running still holds its output); returns its status, or `nil` after `timeout`.
    public func waitForExit(timeout: Duration = .seconds(30)) async -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            if ContinuousClock.now >= deadline { return nil }
            try? await Task.sleep(for: .milliseconds(20))
        }
        // The pipes' last bytes may still be on their way to the readability handlers. A server the process started
        // and left running (scripts/postgres.sh) may hold the pipes open: wait a moment, not for ever.
        let drained = min(deadline, ContinuousClock.now + .seconds(2))
        while output.streamsAtEnd.load(ordering: .acquiring) < 2, ContinuousClock.now < drained {
            try? await Task.sleep(for: .milliseconds(5))
        }
        return process.terminationStatus
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}
