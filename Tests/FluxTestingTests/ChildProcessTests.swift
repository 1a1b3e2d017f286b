import FluxTesting
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// What the tests' child processes must never do: outlive their test, block on a full pipe, or leave descriptors
/// behind in the test runner.
@Suite struct ChildProcessTests {
    static let shell = URL(fileURLWithPath: "/bin/sh")

    @Test func aChildThatIgnoresSIGTERMIsKilledWithinTheBound() async throws {
        try await withChildProcess(Self.shell, ["-c", "trap '' TERM; echo ready; while :; do sleep 0.1; done"]) { child in
            _ = try await child.waitForLine(containing: "ready")
            let started = ContinuousClock.now
            let status = await child.stop(grace: .milliseconds(300))
            #expect(status == SIGKILL, "SIGTERM is ignored, so SIGKILL ends it")
            #expect(ContinuousClock.now - started < .seconds(120), "stopped by the kill, not waited for (it never ends)")
            #expect(!child.isRunning)
            #expect(kill(child.processIdentifier, 0) == -1, "the process is gone (reaped)")
        }
    }

    @Test func aChildThatExitsOnSIGTERMIsNotKilled() async throws {
        try await withChildProcess(Self.shell, ["-c", "echo ready; exec sleep 60"]) { child in
            _ = try await child.waitForLine(containing: "ready")
            #expect(await child.stop(grace: .seconds(20)) == SIGTERM)
        }
    }

    /// 8 MiB is far more than a pipe holds (64 KiB): without a reader the child would block on its next write.
    @Test func aChildThatFillsItsStdoutPipeDoesNotBlock() async throws {
        try await withChildProcess(Self.shell, ["-c", "awk 'BEGIN { s = sprintf(\"%01023d\", 0); for (i = 0; i < 8192; i++) print s }'; echo done >&2"]) { child in
            #expect(await child.waitForExit(timeout: .seconds(60)) == 0)
            #expect(child.outputLines.count == 8192)
            #expect(child.outputLines.allSatisfy { $0.utf8.count == 1023 })
            #expect(child.errorOutput == "done\n")
        }
    }

    /// Each child names its own pipes (their inodes, the same at both ends); once the children are done, none of
    /// those pipes is still open in the test runner.
    @Test func noDescriptorsLeakAfterManyChildren() async throws {
        var pipes: Set<String> = []
        for index in 0..<40 {
            let script = "readlink /proc/$$/fd/1; readlink /proc/$$/fd/2 >&2; echo \(index)"
            try await withChildProcess(Self.shell, ["-c", script]) { child in
                #expect(await child.waitForExit() == 0)
                #expect(child.outputLines.count == 2 && child.outputLines.last == "\(index)")
                pipes.insert(try #require(child.outputLines.first))
                pipes.insert(child.errorOutput.trimmingCharacters(in: .whitespacesAndNewlines))
            }
        }
        #expect(pipes.count == 80 && pipes.allSatisfy { $0.hasPrefix("pipe:[") }, "\(pipes.sorted().prefix(4))")
        let stillOpen = Self.openDescriptorTargets().intersection(pipes)
        #expect(stillOpen.isEmpty, "the children's pipes still open in the test runner: \(stillOpen)")
    }

    /// A child gets /dev/null and its two pipes, nothing else the test runner has open (sockets, other children's
    /// pipes): a descriptor it kept would keep a pipe or a connection open after its owner closed it.
    @Test func aChildInheritsNoOtherDescriptors() async throws {
        try await withChildProcess(Self.shell, ["-c", "ls /proc/$$/fd"]) { child in
            #expect(await child.waitForExit() == 0)
            #expect(Set(child.outputLines) == ["0", "1", "2"])
        }
    }

    /// Signals act by default in a child, whatever the test runner ignores (SIGPIPE, once NIO opened a socket): a
    /// pipeline's writer ends quietly when its reader is done, in every test alike.
    @Test func aChildGetsDefaultSignalActions() async throws {
        _ = signal(SIGPIPE, SIG_IGN)  // as NIO does in the test runner, for good
        let run = try await ChildProcess.run(Self.shell, ["-c", "yes | head -n 1"])
        #expect(run.status == 0 && run.outputLines == ["y"])
        #expect(run.errorOutput.isEmpty, "yes was not ended by SIGPIPE: \(run.errorOutput)")
    }

    @Test func theScopeStopsTheChildAndWhatItStartedWhenTheBodyThrows() async throws {
        struct Expected: Error {}
        var leader: Int32 = 0
        var grandchild: Int32 = 0
        await #expect(throws: Expected.self) {
            try await withChildProcess(Self.shell, ["-c", "sleep 60 & echo started $!; wait"], grace: .milliseconds(500)) { child in
                leader = child.processIdentifier
                grandchild = try #require(Int32(try await child.waitForLine(containing: "started").dropFirst("started ".count)))
                throw Expected()
            }
        }
        #expect(leader > 0 && kill(leader, 0) == -1, "the child is gone")
        // The grandchild is the shell's to reap: it is gone once init reaped it, a zombie until then.
        let deadline = ContinuousClock.now + .seconds(10)
        while Self.isAlive(grandchild), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        #expect(!Self.isAlive(grandchild), "what the child started went with it")
    }

    @Test func waitsAreBounded() async throws {
        try await withChildProcess(Self.shell, ["-c", "sleep 600"], grace: .zero) { child in
            let started = ContinuousClock.now
            #expect(await child.waitForExit(timeout: .milliseconds(200)) == nil)
            await #expect(throws: ConformanceFailure.self) { try await child.waitForLine(containing: "never", timeout: .milliseconds(200)) }
            #expect(ContinuousClock.now - started < .seconds(120), "bounded, not waited for (the child sleeps 600 s)")
        }
        try await withChildProcess(Self.shell, ["-c", "echo bye; exit 3"]) { quitter in
            let error = await #expect(throws: ConformanceFailure.self) { try await quitter.waitForLine(containing: "never") }
            #expect(error?.description.contains("exited (3)") == true)
        }
    }

    /// The descriptors open in this process, as `/proc/self/fd` names their targets (`pipe:[inode]`, paths…).
    static func openDescriptorTargets() -> Set<String> {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return Set(names.compactMap { try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\($0)") })
    }

    /// Whether `pid` is a process that has not ended (a zombie has ended).
    static func isAlive(_ pid: Int32) -> Bool {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return false }
        let state = status.split(separator: ")").last?.split(separator: " ").first
        return state != "Z"
    }
}
