import FluxCore
import Foundation
import Testing

@testable import FluxSQLite

@Suite struct SQLiteGroupCommitterTests {
    @Test func concurrentAppendersShareTransactions() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try SQLiteEventStore(path: directory.path("events.sqlite"))
        let writers = 16
        let perWriter = 25
        try await withThrowingTaskGroup(of: Void.self) { group in
            for writer in 0..<writers {
                group.addTask {
                    for index in 0..<perWriter {
                        let expected: ExpectedVersion = index == 0 ? .noStream : .exact(Int64(index - 1))
                        try await store.append(appendRequest("w\(writer)", expected, [newEvent()]))
                    }
                }
            }
            try await group.waitForAll()
        }
        let statistics = store.writerStatistics
        #expect(statistics.requests == writers * perWriter)
        #expect(statistics.events == writers * perWriter)
        #expect(statistics.transactions < statistics.requests, "group commit must batch: \(statistics)")
        #expect(statistics.largestBatch > 1, "\(statistics)")
        #expect(try await store.head() == Position(Int64(writers * perWriter)))
        try await store.close()
    }

    @Test func aFailingRequestInABatchFailsAlone() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try SQLiteEventStore(path: directory.path("events.sqlite"))
        try await store.append(appendRequest("a", .noStream, [newEvent("a0")]))
        try await store.append(appendRequest("dup", .noStream, [newEvent("taken")]))
        let before = store.writerStatistics.transactions

        let results = await store.appendTogether([
            appendRequest("a", .exact(0), [newEvent("a1"), newEvent("a2")]),  // ok: positions 3, 4
            appendRequest("a", .exact(0), [newEvent("x1"), newEvent("x2")]),  // stale: the previous one moved a to 2
            appendRequest("b", .noStream, [newEvent("b0"), newEvent("taken")]),  // second id stored elsewhere
            appendRequest("c", .noStream, [newEvent("c0")]),  // ok: position 5
            appendRequest("a", .exact(0), [newEvent("a1"), newEvent("a2")]),  // retry of the first: same answer
            appendRequest("", .any, [newEvent()]),  // invalid: never reaches the writer
            appendRequest("c", .exact(0), [newEvent("c1"), newEvent("c2"), newEvent("c3")]),  // ok: positions 6...8
        ])
        #expect(store.writerStatistics.transactions == before + 1, "one transaction for the whole batch")

        let first = try results[0].get()
        #expect(first == AppendResult(aggregateID: "a", firstPosition: Position(3), lastPosition: Position(4), version: 2))
        #expect(throws: StoreError.self) { try results[1].get() }
        if case .failure(let error as StoreError) = results[1] {
            #expect(error.code == .conflict)
            #expect(error.currentVersion == 2, "the conflict sees the earlier request of the same batch")
        }
        if case .failure(let error as StoreError) = results[2] {
            #expect(error.code == .duplicateEventID)
        } else {
            Issue.record("a duplicate event id must fail its request: \(results[2])")
        }
        #expect(try results[3].get() == AppendResult(aggregateID: "c", firstPosition: Position(5), lastPosition: Position(5), version: 0))
        #expect(try results[4].get() == first, "an idempotent retry in the same batch answers as the first")
        if case .failure(let error as StoreError) = results[5] {
            #expect(error.code == .invalidAppend)
        } else {
            Issue.record("an invalid request must fail: \(results[5])")
        }
        #expect(try results[6].get() == AppendResult(aggregateID: "c", firstPosition: Position(6), lastPosition: Position(8), version: 3))

        // Nothing of the failed requests was stored; positions are dense.
        let all = try await store.read(after: .start, limit: 100)
        #expect(all.map(\.position.rawValue) == Array(1...8))
        #expect(all.map(\.eventID) == ["a0", "taken", "a1", "a2", "c0", "c1", "c2", "c3"])
        #expect(try await store.readStream("b", fromVersion: 0, limit: 10).isEmpty)
        #expect(try await store.head() == Position(8))
        #expect(try await store.waitForHead(beyond: Position(7), timeout: .zero) == Position(8), "the head is published")
        try await store.close()
    }

    @Test func appendsAfterAnotherBatchStillConflictCorrectly() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try SQLiteEventStore(path: directory.path("events.sqlite"))
        // Two batches racing for the same version: exactly one winner, whatever the batching.
        let results = await withTaskGroup(of: Result<AppendResult, any Error>.self) { group in
            for writer in 0..<16 {
                group.addTask {
                    do {
                        return .success(try await store.append(appendRequest("one", .noStream, [newEvent("one-\(writer)")])))
                    } catch {
                        return .failure(error)
                    }
                }
            }
            var all: [Result<AppendResult, any Error>] = []
            for await result in group { all.append(result) }
            return all
        }
        #expect(results.filter { (try? $0.get()) != nil }.count == 1)
        #expect(try await store.head() == Position(1))
        try await store.close()
    }

    /// A request under another aggregate name than its stream's fails alone, and sees the name that an earlier
    /// request of the same batch gave a new stream.
    @Test func aNameMismatchInABatchFailsAlone() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try SQLiteEventStore(path: directory.path("events.sqlite"))
        try await store.append(appendRequest("order-1", .noStream, [newEvent("o0")], name: "Order"))
        let results = await store.appendTogether([
            appendRequest("order-1", .any, [newEvent("x0")], name: "Account"),  // refused: order-1 is an Order
            appendRequest("new", .noStream, [newEvent("n0"), newEvent("n1")], name: "Basket"),  // ok: positions 2, 3
            appendRequest("new", .exact(1), [newEvent("y0")], name: "Order"),  // refused: the request before made new a Basket
            appendRequest("order-1", .exact(0), [newEvent("o1")], name: "Order"),  // ok: position 4
        ])
        for index in [0, 2] {
            if case .failure(let error as StoreError) = results[index] {
                #expect(error.code == .aggregateNameMismatch, "\(error)")
            } else {
                Issue.record("request \(index) must fail with a name mismatch: \(results[index])")
            }
        }
        #expect(try results[1].get() == AppendResult(aggregateID: "new", firstPosition: Position(2), lastPosition: Position(3), version: 1))
        #expect(try results[3].get() == AppendResult(aggregateID: "order-1", firstPosition: Position(4), lastPosition: Position(4), version: 1))
        #expect(try await store.read(after: .start, limit: 10).map(\.eventID) == ["o0", "n0", "n1", "o1"])
        try await store.close()
    }

    /// The writer binds strings itself (SQLiteAppendStatements): multi-byte UTF-8 must be stored and matched whole.
    @Test func nonASCIIIdsRoundTrip() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try SQLiteEventStore(path: directory.path("events.sqlite"))
        let request = appendRequest("zürich-✓", .noStream, [newEvent("événement-🚀", type: "bücher.Geliefert")], name: "Straße")
        let first = try await store.append(request)
        #expect(try await store.append(request) == first, "the retry finds the stored event id")
        await #expect(throws: StoreError.self) { try await store.append(appendRequest("zürich-✓", .noStream, [newEvent()])) }
        let stored = try #require(try await store.event(id: "événement-🚀"))
        #expect(stored.aggregateID == "zürich-✓" && stored.aggregateName == "Straße" && stored.eventType == "bücher.Geliefert")
        #expect(try await store.readStream("zürich-✓", fromVersion: 0, limit: 10).map(\.eventID) == ["événement-🚀"])
        try await store.close()
    }
}

/// Failures raised by SQLite itself inside a batch, injected with temporary triggers on the writer connection.
@Suite struct SQLiteGroupCommitterFailureTests {
    @Test func aStatementFailureRollsBackOnlyItsRequest() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try SQLiteEventStore(path: directory.path("events.sqlite"))
        try await store.pool.writeWithoutTransaction { db in
            try db.execute(sql: "CREATE TEMP TRIGGER reject BEFORE INSERT ON events WHEN NEW.event_id = 'reject' BEGIN SELECT RAISE(ABORT, 'rejected'); END")
        }
        let results = await store.appendTogether([
            appendRequest("a", .noStream, [newEvent("a0")]),
            appendRequest("b", .noStream, [newEvent("b0"), newEvent("reject")]),  // b0 is inserted, then rolled back
            appendRequest("c", .noStream, [newEvent("c0")]),
        ])
        #expect(try results[0].get().firstPosition == Position(1))
        #expect(throws: StoreError.self) { try results[1].get() }
        #expect(try results[2].get().firstPosition == Position(2), "the failed request left no hole")
        #expect(try await store.read(after: .start, limit: 10).map(\.eventID) == ["a0", "c0"])
        try await store.close()
    }

    @Test func aTransactionFailureFailsTheWholeBatch() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try SQLiteEventStore(path: directory.path("events.sqlite"))
        try await store.append(appendRequest("before", .noStream, [newEvent("before")]))
        try await store.pool.writeWithoutTransaction { db in
            try db.execute(sql: "CREATE TEMP TRIGGER boom BEFORE INSERT ON events WHEN NEW.event_id = 'boom' BEGIN SELECT RAISE(ROLLBACK, 'boom'); END")
        }
        let results = await store.appendTogether([
            appendRequest("a", .noStream, [newEvent("a0")]),
            appendRequest("b", .noStream, [newEvent("boom")]),
            appendRequest("c", .noStream, [newEvent("c0")]),
        ])
        for result in results {
            if case .failure(let error as StoreError) = result {
                #expect(error.code == .storeUnavailable, "\(error)")
            } else {
                Issue.record("every request of a failed transaction must fail: \(result)")
            }
        }
        #expect(store.writerStatistics.failedTransactions == 1)
        #expect(try await store.read(after: .start, limit: 10).map(\.eventID) == ["before"], "nothing of the batch is stored")
        let next = try await store.append(appendRequest("c", .noStream, [newEvent("c0")]))
        #expect(next.firstPosition == Position(2), "positions stay dense after a failed transaction")
        try await store.close()
    }
}
