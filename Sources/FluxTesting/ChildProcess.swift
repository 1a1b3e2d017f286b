import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A child process for end-to-end tests (the real `fluxgate` binary, a Python peer, `psql`…): started, read line
/// by line, signalled, stopped.
///
/// Built on `posix_spawn` rather than Foundation's `Process`, whose objects (and with them the pipes' read ends)
/// are never freed unless `waitUntilExit()` is called, and which lets a child started on one thread inherit the
/// descriptors another thread opens at the same moment. Here the pipes are close-on-exec, the child gets nothing
/// but /dev/null and its two pipes, and a thread of its own reads both pipes (so a child that writes a lot never
/// blocks on a full pipe), reaps the child, and closes the read ends at most ``drainLimit`` after the child exited
/// (a server the child started and left running may hold the pipes' other ends for ever).
///
/// Use ``withChildProcess(_:_:_:)`` in tests: it stops the child when the test's body ends, whether it returned or
/// threw. The child is in a process group of its own; ``stop(grace:)`` signals that group, so what the child started
/// (a browser driven by a Python script, say) goes with it.
public final class ChildProcess: Sendable {
    /// What the monitor thread learns, shared with the tasks that ask.
    private final class Shared: Sendable {
        let observed = Mutex(Observed())
    }

    private struct Observed {
        var lines: [String] = []
        var pendingLine: [UInt8] = []
        var errorBytes: [UInt8] = []
        /// The exit code, or the number of the signal that ended the process; set once the process is reaped.
        var status: Int32?
        /// Reaped and both pipes closed: nothing more will change.
        var finished = false
    }

    private let shared = Shared()
    /// The child's process identifier, also its process group's.
    public let processIdentifier: Int32

    /// How long the pipes are read after the child exited, at most.
    public static let drainLimit = Duration.seconds(2)

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

    /// Starts `executable` with `arguments` and this process's environment plus `environment`; stdin is
    /// /dev/null, stdout is collected by line, stderr as text.
    public init(_ executable: URL, _ arguments: [String], environment extra: [String: String] = [:]) throws {
        let stdout = try Self.makePipe()
        let stderr: (read: Int32, write: Int32)
        do {
            stderr = try Self.makePipe()
        } catch {
            close(stdout.read)
            close(stdout.write)
            throw error
        }
        var environment = ProcessInfo.processInfo.environment
        environment["SWIFT_BACKTRACE"] = "enable=no"
        environment.merge(extra) { _, new in new }
        let spawned = Self.spawn(executable.path, arguments, environment: environment, stdout: stdout.write, stderr: stderr.write)
        // The child has its own copies now: without closing ours, the read ends would never see the end of file.
        close(stdout.write)
        close(stderr.write)
        switch spawned {
        case .success(let pid):
            processIdentifier = pid
        case .failure(let error):
            close(stdout.read)
            close(stderr.read)
            throw error
        }
        let shared = self.shared
        let pid = processIdentifier
        Thread.detachNewThread {
            Self.monitor(pid: pid, stdout: stdout.read, stderr: stderr.read, shared: shared)
        }
    }

    /// Every stdout line read so far (a last line without its newline is not one: a killed process may have
    /// written half of it).
    public var outputLines: [String] { shared.observed.withLock { $0.lines } }

    /// What the process wrote to stderr so far.
    public var errorOutput: String { String(decoding: shared.observed.withLock { $0.errorBytes }, as: UTF8.self) }

    /// Whether the process has not been reaped yet.
    public var isRunning: Bool { shared.observed.withLock { $0.status == nil } }

    /// Waits for a stdout or stderr line containing `text`; returns it. Throws when the process exits first or
    /// nothing matched within `timeout`.
    public func waitForLine(containing text: String, timeout: Duration = .seconds(30)) async throws -> String {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let line = outputLines.first(where: { $0.contains(text) }) { return line }
            if let line = errorOutput.split(separator: "\n").first(where: { $0.contains(text) }) { return String(line) }
            if let status = shared.observed.withLock({ $0.finished ? $0.status : nil }) {
                throw ConformanceFailure(description: "the process exited (\(status)) before printing \"\(text)\"; stderr: \(errorOutput.suffix(2000))")
            }
            guard ContinuousClock.now < deadline else {
                throw ConformanceFailure(description: "no line containing \"\(text)\" within \(timeout); stderr: \(errorOutput.suffix(2000))")
            }
            await Self.pause()
        }
    }

    /// Sends a signal (SIGTERM, SIGINT, SIGKILL…) to the process, unless it was reaped already (its identifier may
    /// then belong to another process).
    public func signal(_ signal: Int32) {
        shared.observed.withLock { observed in
            if observed.status == nil { _ = kill(processIdentifier, signal) }
        }
    }

    /// Waits for the process to exit and for what it wrote to be read (`outputLines` and `errorOutput` are then
    /// complete, unless a process it left running still holds its output: then for at most ``drainLimit``);
    /// returns its status (the exit code, or the number of the signal that ended it), or `nil` when it is still
    /// running after `timeout`.
    public func waitForExit(timeout: Duration = .seconds(30)) async -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while true {
            let (status, finished) = shared.observed.withLock { ($0.status, $0.finished) }
            if finished { return status }
            if ContinuousClock.now >= deadline, status == nil { return nil }
            // Reaped: the monitor closes the pipes within `drainLimit`, so this wait is bounded too.
            await Self.pause()
        }
    }

    /// Stops the process and what it started in its process group: SIGTERM, then SIGKILL when it is still running
    /// after `grace` (at once for a zero `grace`); returns once it is reaped and its pipes are closed, with its
    /// status. Returns at once when it had exited. `nil` only if even SIGKILL did not end it within 10 s (a process
    /// stuck in the kernel), which the caller can report.
    @discardableResult
    public func stop(grace: Duration = .seconds(5)) async -> Int32? {
        if grace > .zero {
            signalGroup(SIGTERM)
            if let status = await waitForExit(timeout: grace) { return status }
        }
        signalGroup(SIGKILL)
        return await waitForExit(timeout: .seconds(10))
    }

    /// Signals the process group while its leader, the child, is not reaped (the group's identifier is the child's).
    private func signalGroup(_ signal: Int32) {
        shared.observed.withLock { observed in
            if observed.status == nil { _ = kill(-processIdentifier, signal) }
        }
    }

    deinit {
        // A test that dropped its child without stopping it: end the group; the monitor reaps and closes the pipes.
        signalGroup(SIGKILL)
    }

    /// What a command run to its end left.
    public struct Outcome: Sendable {
        /// The exit code or the signal that ended it; `nil` when it was still running at the time limit (it was
        /// stopped then).
        public var status: Int32?
        public var outputLines: [String]
        public var errorOutput: String
    }

    /// Runs a command to its end: waits at most `timeout` for it to exit, stops it when it had not (SIGTERM, then
    /// SIGKILL), and returns what it printed.
    public static func run(
        _ executable: URL, _ arguments: [String], environment: [String: String] = [:], timeout: Duration = .seconds(30)
    ) async throws -> Outcome {
        try await withChildProcess(executable, arguments, environment: environment) { child in
            let status = await child.waitForExit(timeout: timeout)
            return Outcome(status: status, outputLines: child.outputLines, errorOutput: child.errorOutput)
        }
    }

    // MARK: Spawning

    private static func makePipe() throws -> (read: Int32, write: Int32) {
        var descriptors: [Int32] = [-1, -1]
        let result = descriptors.withUnsafeMutableBufferPointer { pipe2($0.baseAddress!, O_CLOEXEC) }
        guard result == 0 else {
            throw ConformanceFailure(description: "could not create a pipe for a child process: \(String(cString: strerror(errno)))")
        }
        return (descriptors[0], descriptors[1])
    }

    private static func spawn(
        _ path: String, _ arguments: [String], environment: [String: String], stdout: Int32, stderr: Int32
    ) -> Result<pid_t, ConformanceFailure> {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, stdout, 1)
        posix_spawn_file_actions_adddup2(&actions, stderr, 2)
        // Nothing else: not the test runner's sockets, nor a descriptor another thread opened without O_CLOEXEC.
        addCloseFrom(&actions, 3)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setpgroup(&attributes, 0)
        var signals = sigset_t()
        sigemptyset(&signals)
        posix_spawnattr_setsigmask(&attributes, &signals)
        // Signals act by default in the child, whatever the test runner set: SIGPIPE is ignored here once NIO opened
        // a socket, and a child inheriting that would behave differently depending on which tests ran before.
        for signal in [SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGPIPE] { sigaddset(&signals, signal) }
        posix_spawnattr_setsigdefault(&attributes, &signals)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid = pid_t()
        let result = posix_spawn(&pid, path, &actions, &attributes, argv, envp)
        guard result == 0 else {
            return .failure(ConformanceFailure(description: "could not start \(path): \(String(cString: strerror(result)))"))
        }
        return .success(pid)
    }

    /// `pipe2(2)`, which Glibc's Swift module leaves out (it is a GNU extension).
    private static func pipe2(_ descriptors: UnsafeMutablePointer<Int32>, _ flags: Int32) -> Int32 {
        typealias Pipe2 = @convention(c) (UnsafeMutablePointer<Int32>, Int32) -> Int32
        guard let symbol = dlsym(nil, "pipe2") else {
            // Without it: a plain pipe, close-on-exec set at once (the spawn closes every other descriptor anyway).
            guard pipe(descriptors) == 0 else { return -1 }
            _ = fcntl(descriptors[0], F_SETFD, FD_CLOEXEC)
            _ = fcntl(descriptors[1], F_SETFD, FD_CLOEXEC)
            return 0
        }
        return unsafeBitCast(symbol, to: Pipe2.self)(descriptors, flags)
    }

    /// `posix_spawn_file_actions_addclosefrom_np` (glibc 2.34), or a close per descriptor open now.
    private static func addCloseFrom(_ actions: inout posix_spawn_file_actions_t, _ lowest: Int32) {
        typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
        if let symbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np"),
            unsafeBitCast(symbol, to: AddCloseFrom.self)(&actions, lowest) == 0
        {
            return
        }
        let open = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        for descriptor in open.compactMap(Int32.init) where descriptor >= lowest {
            posix_spawn_file_actions_addclose(&actions, descriptor)
        }
    }

    // MARK: Monitoring

    /// Runs on a thread of its own: reads both pipes as data comes, reaps the child, closes the pipes once both
    /// reached their end, or `drainLimit` after the child exited.
    private static func monitor(pid: pid_t, stdout: Int32, stderr: Int32, shared: Shared) {
        var open: [Int32] = [stdout, stderr]
        var exited: ContinuousClock.Instant?
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            if open.isEmpty {
                if exited == nil {
                    // It closed its output but runs on: nothing to read, so wait for its end.
                    _ = hasExited(pid, blocking: true)
                    reap(pid, shared)
                    exited = .now
                }
            } else {
                var polled = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
                if poll(&polled, nfds_t(polled.count), 20) > 0 {
                    for entry in polled where entry.revents != 0 {
                        let count = chunk.withUnsafeMutableBytes { read(entry.fd, $0.baseAddress, $0.count) }
                        if count > 0 {
                            deliver(chunk[0..<count], toStandardOutput: entry.fd == stdout, shared)
                        } else if count == 0 || (errno != EINTR && errno != EAGAIN) {
                            close(entry.fd)
                            open.removeAll { $0 == entry.fd }
                        }
                    }
                }
                if exited == nil, hasExited(pid, blocking: false) {
                    reap(pid, shared)
                    exited = .now
                }
            }
            if let exited, open.isEmpty || ContinuousClock.now - exited >= drainLimit {
                open.forEach { close($0) }
                shared.observed.withLock { $0.finished = true }
                return
            }
        }
    }

    private static func deliver(_ bytes: ArraySlice<UInt8>, toStandardOutput: Bool, _ shared: Shared) {
        shared.observed.withLock { observed in
            guard toStandardOutput else {
                observed.errorBytes.append(contentsOf: bytes)
                return
            }
            var start = bytes.startIndex
            while let newline = bytes[start...].firstIndex(of: 0x0A) {
                observed.pendingLine.append(contentsOf: bytes[start..<newline])
                observed.lines.append(String(decoding: observed.pendingLine, as: UTF8.self))
                observed.pendingLine.removeAll(keepingCapacity: true)
                start = newline + 1
            }
            observed.pendingLine.append(contentsOf: bytes[start...])
        }
    }

    /// Whether `pid` has exited, without reaping it (so that its identifier stays its own until `reap`).
    private static func hasExited(_ pid: pid_t, blocking: Bool) -> Bool {
        while true {
            var info = siginfo_t()
            if waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT | (blocking ? 0 : WNOHANG)) == 0 {
                return blocking || info.si_signo == SIGCHLD
            }
            if errno != EINTR { return true }  // ECHILD: it cannot be waited for; `reap` records that
        }
    }

    /// Reaps `pid` and records its status (the exit code, or the signal that ended it; `-1` when unknown), under the
    /// lock `signal(_:)` takes: no signal can reach another process that reuses the identifier.
    private static func reap(_ pid: pid_t, _ shared: Shared) {
        shared.observed.withLock { observed in
            var status: Int32 = 0
            var result: pid_t
            repeat {
                result = waitpid(pid, &status, 0)
            } while result == -1 && errno == EINTR
            guard result == pid else {
                observed.status = -1
                return
            }
            let signal = status & 0x7F
            observed.status = signal == 0 ? (status >> 8) & 0xFF : signal
        }
    }

    /// A short wait between two looks at the child's state (a blocking one when the task is cancelled, so that a
    /// cancelled test still waits out its bounds instead of spinning through them).
    private static func pause() async {
        do {
            try await Task.sleep(for: .milliseconds(10))
        } catch {
            usleep(10_000)
        }
    }
}

/// Starts `executable` with `arguments`, runs `body` with the child, and stops the child (``ChildProcess/stop(grace:)``:
/// SIGTERM to its process group, SIGKILL after `grace`) when `body` returns or throws; the child's pipes are closed
/// by then.
public func withChildProcess<Result>(
    _ executable: URL, _ arguments: [String], environment: [String: String] = [:], grace: Duration = .seconds(5),
    isolation: isolated (any Actor)? = #isolation, _ body: (ChildProcess) async throws -> Result
) async throws -> Result {
    let child = try ChildProcess(executable, arguments, environment: environment)
    return try await withTeardown({ await child.stop(grace: grace) }) { try await body(child) }
}

/// ``withChildProcess(_:_:environment:grace:isolation:_:)`` for the `fluxgate` executable (``ChildProcess/fluxgateExecutable()``).
public func withFluxgate<Result>(
    _ arguments: [String], environment: [String: String] = [:], grace: Duration = .seconds(5),
    isolation: isolated (any Actor)? = #isolation, _ body: (ChildProcess) async throws -> Result
) async throws -> Result {
    try await withChildProcess(try ChildProcess.fluxgateExecutable(), arguments, environment: environment, grace: grace, body)
}
