import FluxCore
import FluxSQLite
import FluxTesting
import Testing

/// Kills a child process appending in a loop (`fluxgate append-loop`) with SIGKILL and checks on reopen that
/// every append it acknowledged is stored and that positions are still dense.
@Suite struct CrashRecoveryTests {
    @Test func acknowledgedAppendsSurviveSIGKILL() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path("crash/events.sqlite")
        var acknowledged: [AppendLoopCrash.Ack] = []
        // Several rounds on the same file: each recovery must also survive the next crash.
        for round in 0..<3 {
            acknowledged += try await AppendLoopCrash.runAndKill(["--path", path, "--writers", "8"], acks: 300)
            let store = try SQLiteEventStore(path: path)
            let problems = try await AppendLoopCrash.problems(in: store, acknowledged: acknowledged)
            #expect(problems.isEmpty, "round \(round): \(problems)")
            try await store.close()
        }
    }
}
