import FluxCore
import FluxPostgres
import FluxTesting
import Testing

/// Two processes ("nodes") append to one PostgreSQL database in a loop (`fluxgate append-loop --store postgres://…`)
/// and are killed with SIGKILL; every append either acknowledged is stored at the position it was acknowledged with,
/// and positions are still dense — also after a second crash on the same database.
@Suite struct PostgresCrashRecoveryTests {
    @Test func acknowledgedAppendsOfTwoNodesSurviveSIGKILL() async throws {
        let location = try await TestPostgres.shared.freshDatabase()
        let url = "postgres://\(location.username)@\(location.host):\(location.port)/\(location.database)"
        var acknowledged: [AppendLoopCrash.Ack] = []
        for round in 0..<2 {
            acknowledged += try await AppendLoopCrash.runAndKill(["--store", url, "--writers", "4"], processes: 2, acks: 400)
            let store = try await PostgresEventStore.open(location)
            let problems = try await AppendLoopCrash.problems(in: store, acknowledged: acknowledged)
            #expect(problems.isEmpty, "round \(round): \(problems)")
            await store.close()
        }
    }
}
