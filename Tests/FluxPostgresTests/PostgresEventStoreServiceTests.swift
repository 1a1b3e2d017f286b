import FluxCore
import FluxPostgres
import FluxTesting
import Foundation
import Logging
import ServiceLifecycle
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `PostgresEventStore.Service`: the store's connection pool and head watcher as child tasks of a service in a
/// `ServiceGroup`, and `fluxgate serve` on PostgreSQL running it so.
@Suite struct PostgresEventStoreServiceTests {
    @Test func theStoreOpensInsideTheGroupAndAGracefulShutdownAnswersQueuedAppendsThenEnds() async throws {
        let location = try await TestPostgres.shared.freshDatabase()
        let service = PostgresEventStore.Service(location: location, options: .forTests, logger: quietLogger)
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(services: [.init(service: service)], logger: quietLogger))
        let running = Task { try await group.run() }
        let store = try await service.store()
        try await store.append(AppendRequest(aggregateID: "a", aggregateName: "A", expectedVersion: .any, events: [NewEvent(eventType: "t", payload: EventPayload(trustedJSON: Array("1".utf8)))]))
        // Appends in flight when the shutdown begins are each answered: stored, or refused with a clear error.
        let appends = (0..<40).map { index in
            Task { () -> Bool in
                do {
                    try await store.append(
                        AppendRequest(aggregateID: "b\(index)", aggregateName: "B", expectedVersion: .any, events: [NewEvent(eventType: "t", payload: EventPayload(trustedJSON: Array("2".utf8)))]))
                    return true
                } catch let error as StoreError {
                    #expect(error.code == .storeUnavailable, "\(error)")
                    return false
                }
            }
        }
        await group.triggerGracefulShutdown()
        try await running.value
        var stored = 1
        for append in appends where try await append.value { stored += 1 }
        // The service has ended: the store refuses, and another node sees exactly what was acknowledged.
        await #expect(throws: StoreError.self) { try await store.head() }
        let other = try await PostgresEventStore.open(location)
        #expect(try await other.head() == Position(Int64(stored)))
        await other.close()
    }

    @Test func aDatabaseThatCannotBeReachedFailsTheServiceAndItsStore() async throws {
        let closed = try ClosedPort()
        defer { withExtendedLifetime(closed) {} }
        let nobody = try PostgresLocation(url: "postgres://fluxgate@127.0.0.1:\(closed.port)/none")
        var options = PostgresEventStore.Options()
        options.operationTimeout = .seconds(2)
        let service = PostgresEventStore.Service(location: nobody, options: options, logger: quietLogger)
        let waiting = Task { try await service.store() }
        let failure = await #expect(throws: StoreError.self) { try await service.run() }
        #expect(failure?.code == .storeUnavailable)
        // It names the database and what to check.
        #expect(failure?.description.contains("127.0.0.1") == true && failure?.description.contains("check") == true, "\(String(describing: failure))")
        await #expect(throws: StoreError.self) { try await waiting.value }
    }

    @Test func aServiceRunsOnce() async throws {
        let location = try await TestPostgres.shared.freshDatabase()
        let service = PostgresEventStore.Service(location: location, options: .forTests, logger: quietLogger)
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(services: [.init(service: service)], logger: quietLogger))
        let running = Task { try await group.run() }
        _ = try await service.store()
        await #expect(throws: StoreError.self) { try await service.run() }
        await group.triggerGracefulShutdown()
        try await running.value
    }

    @Test func serveOnPostgresStopsOnSIGTERMAndSaysWhenTheDatabaseIsAway() async throws {
        let location = try await TestPostgres.shared.freshDatabase()
        let url = "postgres://\(location.username)@\(location.host):\(location.port)/\(location.database)"
        try await withFluxgate(["serve", "--port", "0", "--store", url]) { gateway in
            _ = try await gateway.waitForLine(containing: "listening")
            gateway.signal(SIGTERM)
            #expect(await gateway.waitForExit(timeout: .seconds(60)) == 0, "\(gateway.errorOutput)")
            #expect(gateway.errorOutput.contains("store closed") || gateway.outputLines.contains { $0.contains("store closed") })
        }
        let closed = try ClosedPort()
        defer { withExtendedLifetime(closed) {} }
        let away = "postgres://fluxgate@127.0.0.1:\(closed.port)/none"
        try await withFluxgate(["serve", "--port", "0", "--store", away]) { gateway in
            #expect(await gateway.waitForExit(timeout: .seconds(60)) != 0)
            #expect(gateway.errorOutput.contains("cannot open the PostgreSQL store at"), "\(gateway.errorOutput)")
            #expect(!gateway.outputLines.contains { $0.contains("listening") } && !gateway.errorOutput.contains("listening"))
        }
    }
}
