import FluxTesting
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A throwaway carbon-cache (Debian's graphite-carbon) on loopback for one test: its own directory (config, whisper
/// files, pid file, logs), its line receiver on `port`, the pickle receiver off, its cache-query port picked by the
/// kernel, every series kept at 1 s resolution for an hour. Read back with `whisper-fetch` (python3-whisper).
/// Like the PostgreSQL tests, a missing program fails the test with what to run (scripts/setup.sh), never skips it.
final class TestCarbon {
    let directory: URL
    let port: Int
    private var child: ChildProcess?

    static let carbonCache = "carbon-cache"
    static let whisperFetch = "whisper-fetch"

    /// The program's path on PATH (or in /usr/bin), or a failure saying to run scripts/setup.sh.
    static func program(_ name: String) throws -> URL {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        for directory in path.split(separator: ":").map(String.init) + ["/usr/bin"] {
            let candidate = URL(fileURLWithPath: directory).appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        throw TestFailure("\(name) is not installed: run scripts/setup.sh (it installs graphite-carbon and python3-whisper, the Graphite tests' carbon server)")
    }

    /// A carbon for `port` (not started).
    init(port: Int) throws {
        _ = try Self.program(Self.carbonCache)
        _ = try Self.program(Self.whisperFetch)
        self.port = port
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("fluxgate-carbon-\(UUID().uuidString)")
        let storage = directory.appendingPathComponent("storage")
        try FileManager.default.createDirectory(at: storage.appendingPathComponent("whisper"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("log"), withIntermediateDirectories: true)
        let configuration = """
            [cache]
            STORAGE_DIR = \(storage.path)
            LOCAL_DATA_DIR = \(storage.path)/whisper
            WHITELISTS_DIR = \(storage.path)/lists
            CONF_DIR = \(directory.path)
            LOG_DIR = \(directory.path)/log
            PID_DIR = \(directory.path)
            USER =
            MAX_CACHE_SIZE = inf
            MAX_UPDATES_PER_SECOND = inf
            MAX_CREATES_PER_MINUTE = inf
            LINE_RECEIVER_INTERFACE = 127.0.0.1
            LINE_RECEIVER_PORT = \(port)
            ENABLE_UDP_LISTENER = False
            PICKLE_RECEIVER_PORT = 0
            CACHE_QUERY_INTERFACE = 127.0.0.1
            CACHE_QUERY_PORT = 0
            WHISPER_FALLOCATE_CREATE = False

            """
        try Data(configuration.utf8).write(to: directory.appendingPathComponent("carbon.conf"))
        try Data("[everything]\npattern = .*\nretentions = 1s:1h\n".utf8).write(to: directory.appendingPathComponent("storage-schemas.conf"))
    }

    /// Starts carbon-cache in the foreground and waits until its line receiver accepts connections.
    func start() async throws {
        let pidFile = directory.appendingPathComponent("carbon.pid")
        try? FileManager.default.removeItem(at: pidFile)  // a killed carbon leaves it
        let child = try ChildProcess(try Self.program(Self.carbonCache), [
            "--config=\(directory.appendingPathComponent("carbon.conf").path)", "--pidfile=\(pidFile.path)",
            "--logdir=\(directory.appendingPathComponent("log").path)", "--nodaemon", "start",
        ])
        self.child = child
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            guard child.isRunning else {
                throw TestFailure("carbon-cache exited at start: \(child.outputLines.suffix(20).joined(separator: "\n")) \(child.errorOutput.suffix(2000))")
            }
            if let connection = try? await RawTCPConnection.connect(port: port) {
                await connection.close()
                return
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw TestFailure("carbon-cache did not listen on 127.0.0.1:\(port) within 30 s: \(child.outputLines.suffix(20).joined(separator: "\n"))")
    }

    /// Kills carbon at once (SIGKILL), as a crash would.
    func kill() async {
        _ = await child?.stop(grace: .zero)
    }

    /// Stops carbon (SIGTERM) and removes its directory.
    func remove() async {
        _ = await child?.stop()
        try? FileManager.default.removeItem(at: directory)
    }

    /// The values stored for the series at `path` (dot-separated), oldest first; empty while there is no file yet.
    func values(_ path: String) async throws -> [Double] {
        let file = directory.appendingPathComponent("storage/whisper/" + path.replacingOccurrences(of: ".", with: "/") + ".wsp")
        guard FileManager.default.fileExists(atPath: file.path) else { return [] }
        let fetch = try await ChildProcess.run(try Self.program(Self.whisperFetch), [file.path])
        guard fetch.status == 0 else { throw TestFailure("whisper-fetch \(file.path) failed: \(fetch.errorOutput)") }
        return fetch.outputLines.compactMap { line in line.split(whereSeparator: \.isWhitespace).last.flatMap { Double($0) } }
    }

    /// Waits until the series at `path` has stored a value that satisfies `condition`; returns the largest value.
    @discardableResult
    func waitForValue(
        _ path: String, timeout: Duration = .seconds(60), _ condition: (Double) -> Bool
    ) async throws -> Double {
        let deadline = ContinuousClock.now + timeout
        var seen: [Double] = []
        while ContinuousClock.now < deadline {
            seen = try await values(path)
            if let hit = seen.filter(condition).max() { return hit }
            try await Task.sleep(for: .milliseconds(250))
        }
        throw TestFailure("carbon stored no matching value of \(path) within \(timeout) (values: \(seen.suffix(10)))")
    }
}

/// Runs `body` with a carbon for `port` (started unless `started` is false), removed when `body` ends.
func withCarbon<Result>(
    port: Int, started: Bool = true, isolation: isolated (any Actor)? = #isolation, _ body: (TestCarbon) async throws -> Result
) async throws -> Result {
    let carbon = try TestCarbon(port: port)
    return try await withTeardown({ await carbon.remove() }) {
        if started { try await carbon.start() }
        return try await body(carbon)
    }
}

/// A loopback port free at the time of the call (carbon binds it with SO_REUSEPORT, so a port held by a
/// ``ClosedPort`` cannot be handed to it).
func freeCarbonPort() throws -> Int {
    try ClosedPort().port
}
