import FluxCore
import FluxTesting
import Testing

@Suite struct InMemoryEventStoreTests {
    let harness = StoreHarness(make: { InMemoryEventStore() }, reopen: nil)

    @Test(arguments: StoreConformance.cases)
    func conformance(_ conformanceCase: ConformanceCase) async throws {
        try await conformanceCase.run(harness)
    }

    @Test func checkpointStoreSavesAndReplaces() async throws {
        let checkpoints = InMemoryCheckpointStore()
        #expect(try await checkpoints.load(consumer: "c") == nil)
        let epoch = StoreEpoch.random()
        try await checkpoints.save(Checkpoint(position: Position(5), epoch: epoch), consumer: "c")
        try await checkpoints.save(Checkpoint(position: Position(9), epoch: epoch), consumer: "c")
        #expect(try await checkpoints.load(consumer: "c") == Checkpoint(position: Position(9), epoch: epoch))
        #expect(try await checkpoints.load(consumer: "other") == nil)
    }
}
