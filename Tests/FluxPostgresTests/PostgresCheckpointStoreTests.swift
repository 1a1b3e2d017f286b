import FluxCore
import FluxPostgres
import Testing

@Suite struct PostgresCheckpointStoreTests {
    @Test func savesLoadsAndReplacesPerConsumer() async throws {
        let database = try await TestPostgres.shared.freshDatabase()
        let store = try await PostgresCheckpointStore.connect(to: database, logger: quietLogger, timeout: TestPostgres.operationTimeout)
        let epoch = StoreEpoch.random()
        #expect(try await store.load(consumer: "projections") == nil)
        try await store.save(Checkpoint(position: Position(41), epoch: epoch), consumer: "projections")
        try await store.save(Checkpoint(position: Position(7), epoch: epoch), consumer: "mailer")
        try await store.save(Checkpoint(position: Position(42), epoch: epoch), consumer: "projections")
        #expect(try await store.load(consumer: "projections") == Checkpoint(position: Position(42), epoch: epoch))
        #expect(try await store.load(consumer: "mailer") == Checkpoint(position: Position(7), epoch: epoch))
        await store.close()
        // A restart resumes from the saved checkpoint.
        let reopened = try await PostgresCheckpointStore.connect(to: database, logger: quietLogger, timeout: TestPostgres.operationTimeout)
        #expect(try await reopened.load(consumer: "projections") == Checkpoint(position: Position(42), epoch: epoch))
        await reopened.close()
    }

    @Test func sharesTheDatabaseWithTheEventStore() async throws {
        let database = try await TestPostgres.shared.freshDatabase()
        let events = try await PostgresEventStore.open(database)
        let checkpoints = try await PostgresCheckpointStore.connect(to: database, logger: quietLogger, timeout: TestPostgres.operationTimeout)
        try await checkpoints.save(Checkpoint(position: Position(3), epoch: events.epoch), consumer: "c")
        #expect(try await checkpoints.load(consumer: "c")?.epoch == events.epoch)
        await checkpoints.close()
        await events.close()
    }
}
