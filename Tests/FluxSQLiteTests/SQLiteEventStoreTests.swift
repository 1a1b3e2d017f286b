import FluxTesting
import FluxCore
import Foundation
import GRDB
import Testing

@testable import FluxSQLite

func newEvent(_ id: String? = nil, type: String = "test.Happened", json: String = #"{"n":1}"#) -> NewEvent {
    NewEvent(eventID: id, eventType: type, payload: EventPayload(trustedJSON: Array(json.utf8)))
}

func appendRequest(_ aggregateID: String, _ expected: ExpectedVersion, _ events: [NewEvent], name: String = "Thing") -> AppendRequest {
    AppendRequest(aggregateID: aggregateID, aggregateName: name, expectedVersion: expected, events: events)
}

@Suite struct SQLiteEventStoreTests {
    /// A read whose task is cancelled (its HTTP client went away) ends with `CancellationError`, not a store failure
    /// that the gateway would log as an error and answer 503 `store_unavailable`.
    @Test func aCancelledReadIsNoStoreFailure() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try SQLiteEventStore(path: directory.path("events.sqlite"))
        try await store.append(appendRequest("a-1", .any, [newEvent("e-1")]))
        let read = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            // A page longer than `smallPage` is read on the pool's readers, which see the cancellation.
            return try await store.read(after: .start, limit: SQLiteEventStore.smallPage + 1)
        }
        await #expect(throws: CancellationError.self) { try await read.value }
        // Lookups and short pages run on the caller's thread and finish; the store keeps serving.
        #expect(try await store.event(id: "e-1")?.aggregateID == "a-1")
        #expect(try await store.read(after: .start, limit: 10).count == 1)
        try await store.close()
    }

    /// Point reads use their own read-only connection: it sees every committed append at once, and a closed store
    /// refuses them like any read.
    @Test func lookupsSeeCommittedAppendsAndStopAtClose() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try SQLiteEventStore(path: directory.path("events.sqlite"))
        #expect(try await store.head() == Position(0))
        for index in 1...5 {
            try await store.append(appendRequest("a-1", .any, [newEvent("e-\(index)")]))
            #expect(try await store.head() == Position(Int64(index)))
            #expect(try await store.event(id: "e-\(index)")?.position == Position(Int64(index)))
        }
        try await store.close()
        await #expect(throws: StoreError.self) { try await store.event(id: "e-1") }
        await #expect(throws: StoreError.self) { try await store.head() }
    }

    @Test func durableSettingsByDefault() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        for durability in [SQLiteDurability.full, .normal] {
            let store = try SQLiteEventStore(path: directory.path("\(durability).sqlite"), durability: durability)
            let (journal, synchronous) = try await store.pool.writeWithoutTransaction { db in
                (try String.fetchOne(db, sql: "PRAGMA journal_mode"), try Int.fetchOne(db, sql: "PRAGMA synchronous"))
            }
            #expect(journal == "wal")
            #expect(synchronous == durability.pragmaNumber, "synchronous for \(durability)")
            try await store.close()
        }
        #expect(SQLiteDurability.full.pragmaNumber == 2)
    }

    @Test func epochIsMadeOnceAndSurvivesReopen() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try SQLiteEventStore(path: directory.path("events.sqlite"))
        let epoch = store.epoch
        try await store.close()
        for _ in 0..<3 {
            let reopened = try SQLiteEventStore(path: directory.path("events.sqlite"))
            #expect(reopened.epoch == epoch)
            try await reopened.close()
        }
        let other = try SQLiteEventStore(path: directory.path("other.sqlite"))
        #expect(other.epoch != epoch, "a new file gets a new epoch")
        try await other.close()
    }

    @Test func createsParentDirectories() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path("a/b/c/events.sqlite")
        let store = try SQLiteEventStore(path: path)
        try await store.append(appendRequest("s", .noStream, [newEvent()]))
        try await store.close()
        #expect(FileManager.default.fileExists(atPath: path))
    }

    @Test func refusesAFileThatIsNotADatabase() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path("notes.txt")
        try Data(String(repeating: "not a database\n", count: 100).utf8).write(to: URL(fileURLWithPath: path))
        do {
            _ = try SQLiteEventStore(path: path)
            Issue.record("opening a text file must fail")
        } catch let error as StoreError {
            #expect(error.code == .storeUnavailable)
            #expect(error.message.contains(path), "the message names the file: \(error.message)")
        }
    }

    @Test func closedStoreRefusesReadsAndAppends() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try SQLiteEventStore(path: directory.path("events.sqlite"))
        try await store.append(appendRequest("s", .noStream, [newEvent()]))
        try await store.close()
        try await store.close()  // harmless
        await #expect(throws: StoreError.self) { try await store.append(appendRequest("s", .any, [newEvent()])) }
        await #expect(throws: StoreError.self) { try await store.read(after: .start, limit: 10) }
        do {
            _ = try await store.head()
            Issue.record("head() on a closed store must throw")
        } catch let error as StoreError {
            #expect(error.code == .storeUnavailable)
        }
    }

    @Test func closeWaitsForQueuedAppends() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path("events.sqlite")
        let store = try SQLiteEventStore(path: path)
        let appends = Task {
            try await withThrowingTaskGroup(of: Bool.self) { group in
                for index in 0..<32 {
                    group.addTask {
                        do {
                            try await store.append(appendRequest("s\(index)", .noStream, [newEvent("close-\(index)")]))
                            return true
                        } catch StoreError.storeUnavailable {
                            return false  // arrived after close
                        }
                    }
                }
                var stored = 0
                for try await ok in group where ok { stored += 1 }
                return stored
            }
        }
        try await Task.sleep(for: .milliseconds(5))
        try await store.close()
        let acknowledged = try await appends.value
        let reopened = try SQLiteEventStore(path: path)
        #expect(try await reopened.head() == Position(Int64(acknowledged)), "every acknowledged append is stored, nothing else")
        try await reopened.close()
    }

    /// The SQL filter query (merged index ranges, IN lists) must answer exactly what `EventFilter.matches` says.
    @Test func filtersMatchTheReferenceStore() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try SQLiteEventStore(path: directory.path("events.sqlite"))
        let reference = InMemoryEventStore()
        let names = ["Account", "Basket", "Order"]
        let types = (0..<5).map { "t.Type\($0)" }
        var generator = SeededGenerator(seed: 7)
        for index in 0..<600 {
            let stream = "s\(generator.next() % 40)"
            let request = appendRequest(
                stream, .any, [newEvent("e\(index)", type: types[Int(generator.next() % 5)])],
                name: names[Int(stream.dropFirst())! % 3]
            )
            try await store.append(request)
            try await reference.append(request)
        }
        let manyTypes = Set((0..<80).map { "t.Type\($0)" })  // more values than are merged: a plain IN list
        let filters: [EventFilter] = [
            .all,
            EventFilter(eventTypes: ["t.Type1"]),
            EventFilter(eventTypes: ["t.Type1", "t.Type3"]),
            EventFilter(eventTypes: manyTypes),
            EventFilter(aggregateNames: ["Basket"]),
            EventFilter(aggregateNames: ["Basket", "Order"], eventTypes: ["t.Type0", "t.Type4"]),
            EventFilter(aggregateIDs: ["s1", "s7", "s30"]),
            EventFilter(aggregateNames: ["Account"], eventTypes: ["t.Type2"], aggregateIDs: ["s3", "s6", "s9"]),
            EventFilter(eventTypes: ["missing"]),
        ]
        for filter in filters {
            for (after, limit) in [(0, 1000), (0, 7), (123, 50), (599, 10), (600, 10), (-5, 3)] {
                let got = try await store.read(after: Position(Int64(after)), limit: limit, filter: filter)
                let expected = try await reference.read(after: Position(Int64(after)), limit: limit, filter: filter)
                #expect(got.map(\.eventID) == expected.map(\.eventID), "filter \(filter) after \(after) limit \(limit)")
            }
        }
        try await store.close()
    }

    @Test func streamReadsAndEventByID() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try SQLiteEventStore(path: directory.path("events.sqlite"))
        try await store.append(appendRequest("s", .noStream, (0..<5).map { newEvent("s-\($0)", json: "\($0)") }))
        #expect(try await store.readStream("s", fromVersion: 2, limit: 2).map(\.version) == [2, 3])
        #expect(try await store.readStream("s", fromVersion: -1, limit: 100).count == 5)
        #expect(try await store.event(id: "s-4")?.payload.bytes == Array("4".utf8))
        #expect(try await store.event(id: "nope") == nil)
        try await store.close()
    }
}

