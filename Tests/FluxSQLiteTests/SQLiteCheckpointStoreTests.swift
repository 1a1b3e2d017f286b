import FluxCore
import FluxSQLite
import Foundation
import Testing

@Suite struct SQLiteCheckpointStoreTests {
    @Test func savesLoadsReplacesAndSurvivesReopen() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path("state/checkpoints.sqlite")
        let epoch = StoreEpoch.random()
        let checkpoints = try SQLiteCheckpointStore(path: path)
        #expect(try await checkpoints.load(consumer: "balances") == nil)
        try await checkpoints.save(Checkpoint(position: Position(5), epoch: epoch), consumer: "balances")
        #expect(try await checkpoints.load(consumer: "balances") == Checkpoint(position: Position(5), epoch: epoch))
        let newEpoch = StoreEpoch.random()
        try await checkpoints.save(Checkpoint(position: Position(9), epoch: newEpoch), consumer: "balances")
        try await checkpoints.save(Checkpoint(position: Position(1), epoch: epoch), consumer: "audit")
        #expect(try await checkpoints.load(consumer: "balances") == Checkpoint(position: Position(9), epoch: newEpoch))
        try checkpoints.close()
        await #expect(throws: StoreError.self) { try await checkpoints.load(consumer: "balances") }

        let reopened = try SQLiteCheckpointStore(path: path)
        #expect(try await reopened.load(consumer: "balances") == Checkpoint(position: Position(9), epoch: newEpoch))
        #expect(try await reopened.load(consumer: "audit") == Checkpoint(position: Position(1), epoch: epoch))
        #expect(try await reopened.load(consumer: "other") == nil)
        try reopened.close()
    }

    @Test func sharesTheEventStoreFile() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path("events.sqlite")
        let store = try SQLiteEventStore(path: path)
        try await store.append(appendRequest("s", .noStream, [newEvent()]))
        let checkpoints = try SQLiteCheckpointStore(path: path)
        try await checkpoints.save(Checkpoint(position: try await store.head(), epoch: store.epoch), consumer: "c")
        try checkpoints.close()
        try await store.close()

        let reopenedStore = try SQLiteEventStore(path: path)
        let reopenedCheckpoints = try SQLiteCheckpointStore(path: path)
        #expect(try await reopenedCheckpoints.load(consumer: "c") == Checkpoint(position: Position(1), epoch: reopenedStore.epoch))
        try reopenedCheckpoints.close()
        try await reopenedStore.close()
    }
}
