import FluxCore
import FluxPostgres
import FluxTesting
import Testing

/// The shared store conformance suite, run against PostgreSQL stores, each on a fresh database.
@Suite struct PostgresEventStoreConformanceTests {
    static let harness = StoreHarness(
        make: { try await PostgresEventStore.open(try await TestPostgres.shared.freshDatabase()) },
        reopen: { store in
            guard let store = store as? PostgresEventStore else {
                throw StoreError(.storeUnavailable, "the harness only reopens PostgreSQL stores")
            }
            await store.close()
            return try await PostgresEventStore.open(store.location)
        }
    )

    @Test(arguments: StoreConformance.cases)
    func conformance(_ conformanceCase: ConformanceCase) async throws {
        try await conformanceCase.run(Self.harness)
    }
}
