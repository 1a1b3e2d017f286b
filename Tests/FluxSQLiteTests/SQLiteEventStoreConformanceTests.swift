import FluxCore
import FluxSQLite
import FluxTesting
import Foundation
import Testing

/// The shared store conformance suite, run against SQLite stores on fresh temporary files.
@Suite struct SQLiteEventStoreConformanceTests {
    static let harness = StoreHarness(
        make: {
            let directory = try TemporaryDirectory()
            return try SQLiteEventStore(path: directory.path("events.sqlite"))
        },
        reopen: { store in
            guard let store = store as? SQLiteEventStore else {
                throw StoreError(.storeUnavailable, "the harness only reopens SQLite stores")
            }
            try await store.close()
            return try SQLiteEventStore(path: store.path)
        }
    )

    @Test(arguments: StoreConformance.cases)
    func conformance(_ conformanceCase: ConformanceCase) async throws {
        try await conformanceCase.run(Self.harness)
    }
}
