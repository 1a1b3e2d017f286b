import FluxCore
@testable import FluxPostgres
import FluxTesting
import Foundation
import Testing

func newEvent(_ json: String = #"{"n":1}"#) -> NewEvent {
    NewEvent(eventType: "test.Happened", payload: EventPayload(trustedJSON: Array(json.utf8)))
}

/// Reads the whole feed from `store` as it grows until it reaches `count` events; returns the positions seen.
func tail(_ store: PostgresEventStore, until count: Int64, deadline: Duration = .seconds(300)) async throws -> [Int64] {
    var seen: [Int64] = []
    var cursor = Position.start
    let clock = ContinuousClock()
    let end = clock.now + deadline
    while cursor.rawValue < count {
        guard clock.now < end else { throw TestSetupError("the tailer saw only \(seen.count) of \(count) events") }
        let page = try await store.read(after: cursor, limit: 500)
        if let last = page.last {
            seen += page.map(\.position.rawValue)
            cursor = last.position
        } else {
            _ = try await store.waitForHead(beyond: cursor, timeout: .seconds(1))
        }
    }
    return seen
}

@Suite struct PostgresEventStoreTests {
    /// The best-known failure of PostgreSQL event stores is a reader passing a position whose transaction commits
    /// later. Four writers on two nodes append 10,000 events, with conflicts, while a tailer on each node reads:
    /// each tailer must see positions 1...N exactly once, in order, and each stream's versions must be dense.
    @Test func positionsAreDenseAndInCommitOrderAcrossTwoNodes() async throws {
        let database = try await TestPostgres.shared.freshDatabase()
        let nodes = [try await PostgresEventStore.open(database), try await PostgresEventStore.open(database)]
        #expect(nodes[0].epoch == nodes[1].epoch)
        let writers = 4
        let appendsPerWriter = 2_500
        let streams = (0..<8).map { "account-\($0)" }
        let total = Int64(writers * appendsPerWriter)

        async let tailers = withThrowingTaskGroup(of: [Int64].self) { group in
            for node in nodes { group.addTask { try await tail(node, until: total) } }
            return try await group.reduce(into: [[Int64]]()) { $0.append($1) }
        }
        let conflicts = try await withThrowingTaskGroup(of: Int.self) { group in
            for writer in 0..<writers {
                let node = nodes[writer % 2]
                group.addTask {
                    var random = SeededGenerator(seed: UInt64(writer + 1))
                    var known: [String: Int64] = [:]  // what this writer believes each stream's version is
                    var conflicts = 0
                    for index in 0..<appendsPerWriter {
                        let stream = streams.randomElement(using: &random)!
                        while true {
                            let expected: ExpectedVersion = known[stream].map { .exact($0) } ?? .noStream
                            do {
                                let result = try await node.append(
                                    AppendRequest(
                                        aggregateID: stream, aggregateName: "Account", expectedVersion: expected,
                                        events: [newEvent(#"{"writer":\#(writer),"index":\#(index)}"#)]
                                    )
                                )
                                known[stream] = result.version
                                break
                            } catch let error as StoreError where error.code == .conflict {
                                conflicts += 1
                                let events = try await node.readStream(stream, fromVersion: (known[stream] ?? -1) + 1, limit: 100_000)
                                known[stream] = events.last?.version ?? known[stream]
                            }
                        }
                    }
                    return conflicts
                }
            }
            return try await group.reduce(0, +)
        }
        let seen = try await tailers
        #expect(conflicts > 0, "the writers raced on the same streams")
        for positions in seen {
            #expect(positions.count == Int(total))
            #expect(positions == Array(1...total), "every position once, in order")
        }
        var versions = 0
        for stream in streams {
            let events = try await nodes[0].readStream(stream, fromVersion: 0, limit: 100_000)
            #expect(events.map(\.version) == Array(0..<Int64(events.count)))
            versions += events.count
        }
        #expect(versions == Int(total))
        #expect(try await nodes[1].head() == Position(total))
        for node in nodes { await node.close() }
    }

    @Test func concurrentAppendersShareTransactions() async throws {
        let store = try await PostgresEventStore.open(try await TestPostgres.shared.freshDatabase())
        try await withThrowingTaskGroup(of: Void.self) { group in
            for writer in 0..<16 {
                group.addTask {
                    for index in 0..<20 {
                        try await store.append(
                            AppendRequest(
                                aggregateID: "w\(writer)", aggregateName: "T",
                                expectedVersion: index == 0 ? .noStream : .exact(Int64(index - 1)), events: [newEvent()]
                            )
                        )
                    }
                }
            }
            try await group.waitForAll()
        }
        let statistics = store.writerStatistics
        #expect(statistics.requests == 320)
        #expect(statistics.events == 320)
        #expect(statistics.transactions < statistics.requests, "group commit must batch: \(statistics)")
        #expect(try await store.head() == Position(320))
        await store.close()
    }

    /// A failing request in a batch fails alone: a conflict and an idempotent retry share a batch with new appends.
    @Test func aFailingRequestInABatchFailsAlone() async throws {
        let store = try await PostgresEventStore.open(try await TestPostgres.shared.freshDatabase())
        let first = NewEvent(eventID: "fixed-1", eventType: "t.A", payload: EventPayload(trustedJSON: Array("{}".utf8)))
        let stored = try await store.append(AppendRequest(aggregateID: "a", aggregateName: "T", expectedVersion: .noStream, events: [first]))
        let results = await withTaskGroup(of: (Int, Result<AppendResult, any Error>).self) { group in
            let requests = [
                AppendRequest(aggregateID: "a", aggregateName: "T", expectedVersion: .noStream, events: [newEvent()]),  // conflict
                AppendRequest(aggregateID: "a", aggregateName: "T", expectedVersion: .noStream, events: [first]),  // retry
                AppendRequest(aggregateID: "b", aggregateName: "T", expectedVersion: .noStream, events: [newEvent(), newEvent()]),
                AppendRequest(aggregateID: "c", aggregateName: "T", expectedVersion: .any, events: [newEvent()]),
            ]
            for (index, request) in requests.enumerated() {
                group.addTask {
                    do { return (index, .success(try await store.append(request))) } catch { return (index, .failure(error)) }
                }
            }
            return await group.reduce(into: [Int: Result<AppendResult, any Error>]()) { $0[$1.0] = $1.1 }
        }
        #expect(throws: StoreError.self) { try results[0]!.get() }
        #expect(try results[1]!.get() == stored, "an idempotent retry answers as the first append did")
        #expect(try results[2]!.get().version == 1)
        #expect(try results[3]!.get().version == 0)
        #expect(try await store.head() == Position(4))
        let all = try await store.read(after: .start, limit: 10)
        #expect(all.map(\.position.rawValue) == [1, 2, 3, 4])
        await store.close()
    }

    /// Two requests carrying the same new event in one batch: one stores it, the other is answered as its retry.
    @Test func theSameNewAppendTwiceInOneBatchIsStoredOnce() async throws {
        let store = try await PostgresEventStore.open(try await TestPostgres.shared.freshDatabase())
        let event = newEvent()
        let request = AppendRequest(aggregateID: "twice", aggregateName: "T", expectedVersion: .any, events: [event])
        async let first = store.append(request)
        async let second = store.append(request)
        async let other = store.append(AppendRequest(aggregateID: "other", aggregateName: "T", expectedVersion: .any, events: [newEvent()]))
        let (a, b, _) = try await (first, second, other)
        #expect(a == b)
        #expect(try await store.head() == Position(2))
        #expect(try await store.readStream("twice", fromVersion: 0, limit: 10).count == 1)
        await store.close()
    }

    /// A commit on one node wakes the head waiters of another through NOTIFY, long before its safety-net poll.
    @Test func aCommitOnOneNodeWakesTheOtherThroughNotify() async throws {
        let database = try await TestPostgres.shared.freshDatabase()
        var slowPoll = PostgresEventStore.Options.forTests
        slowPoll.headPollInterval = .seconds(3600)
        let writer = try await PostgresEventStore.open(database, options: slowPoll)
        let reader = try await PostgresEventStore.open(database, options: slowPoll)
        try await Task.sleep(for: .milliseconds(300))  // let the listener connect
        for round in 1...5 {
            async let woken = reader.waitForHead(beyond: Position(Int64(round - 1)), timeout: .seconds(120))
            let started = ContinuousClock.now
            try await writer.append(AppendRequest(aggregateID: "n", aggregateName: "T", expectedVersion: .any, events: [newEvent()]))
            #expect(try await woken == Position(Int64(round)))
            #expect(ContinuousClock.now - started < .seconds(60), "woken by the notification, not by a poll or the timeout")
        }
        await writer.close()
        await reader.close()
    }

    @Test func nodesStartingTogetherMigrateOnce() async throws {
        let database = try await TestPostgres.shared.freshDatabase()
        let stores = try await withThrowingTaskGroup(of: PostgresEventStore.self) { group in
            for _ in 0..<4 { group.addTask { try await PostgresEventStore.open(database) } }
            return try await group.reduce(into: [PostgresEventStore]()) { $0.append($1) }
        }
        #expect(Set(stores.map(\.epoch)).count == 1, "one epoch for the database")
        for store in stores { await store.close() }
    }

    /// The append function finds rows by key whatever the table's statistics: on a new, small table the planner
    /// would scan it, and plpgsql keeps that plan per connection as the table grows (16-append batches took twice as
    /// long in a bench on a new database). The server's scan counters (`pg_stat_user_indexes`, `pg_stat_user_tables`)
    /// show which plans ran; eight calls take plpgsql past its five custom plans to the cached generic one.
    @Test func theAppendFunctionUsesItsIndexesOnANewTable() async throws {
        let database = try await TestPostgres.shared.freshDatabase()
        let store = try await PostgresEventStore.open(database)
        await store.close()
        // The server's own counters, not log messages a loaded machine may cut short: index and table scans of
        // fluxgate_events before and after eight calls (past plpgsql's five custom plans, so the cached generic
        // plan runs too).
        let counters = """
            SELECT (SELECT coalesce(sum(idx_scan), 0) FROM pg_stat_user_indexes WHERE indexrelname = 'fluxgate_events_event_id_key')
                || ' ' || (SELECT coalesce(sum(idx_scan), 0) FROM pg_stat_user_indexes WHERE indexrelname = 'fluxgate_events_aggregate_id_version_key')
                || ' ' || (SELECT coalesce(sum(seq_scan), 0) FROM pg_stat_user_tables WHERE relname = 'fluxgate_events')
            """
        func read() async throws -> [Int] {
            try await TestPostgres.psqlOutput(database, counters).split(separator: " ").compactMap { Int($0) }
        }
        let before = try await read()
        var sql = ""
        for call in 0..<8 {
            sql += """
                SELECT * FROM fluxgate_append_v1(ARRAY['stream-\(call)'], ARRAY['T'], ARRAY[-1::bigint], ARRAY[-1::bigint], ARRAY[1],
                    ARRAY['event-\(call)'], ARRAY['t'], ARRAY['\\x7b7d'::bytea], ARRAY[1], ARRAY[0], 1);

                """
        }
        try await TestPostgres.psql(database, sql)
        // A backend reports its counters when it ends (or within a second): wait for them, boundedly.
        var after = try await read()
        let deadline = ContinuousClock.now + .seconds(30)
        while after.count == 3, before.count == 3, after[0] - before[0] < 8 || after[1] - before[1] < 8, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(200))
            after = try await read()
        }
        try #require(before.count == 3 && after.count == 3, "counters: \(before) → \(after)")
        #expect(after[0] - before[0] >= 8, "event id lookups by index: \(before) → \(after)")
        #expect(after[1] - before[1] >= 8, "version lookups by index: \(before) → \(after)")
        #expect(after[2] == before[2], "no sequential scan of fluxgate_events: \(before) → \(after)")
        let reopened = try await PostgresEventStore.open(database)
        #expect(try await reopened.head() == Position(8), "the eight calls were appends like any other")
        await reopened.close()
    }

    /// The stream listing is in byte order whatever the database's collation: on databases whose default collation
    /// is ICU's en-US (which sorts "acc-1" < "Acc-2" < "acc-3", so the ids with a prefix are not contiguous), the
    /// listing cases of the conformance suite hold; and its seeks can use the "C"-collated index (with sequential
    /// scans disabled the plan names it and scans nothing: a tiny table may be planned either way otherwise).
    @Test func theStreamListingIsInByteOrderOnALinguisticCollation() async throws {
        let server = try await TestPostgres.shared.location()
        @Sendable func icuDatabase() async throws -> PostgresLocation {
            let name = "fluxgate_test_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
            try await TestPostgres.psql(server, "CREATE DATABASE \(name) LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8' TEMPLATE template0")
            return server.database(name)
        }
        let probe = try await icuDatabase()
        #expect(try await TestPostgres.psqlOutput(probe, "SELECT 'Acc-2' < 'acc-3' AND 'acc-1' < 'Acc-2'") == "t", "en-US sorts case-insensitively first")
        let harness = StoreHarness(make: { try await PostgresEventStore.open(try await icuDatabase()) }, reopen: nil)
        for conformanceCase in StoreConformance.cases where conformanceCase.name.hasPrefix("stream listing") {
            try await conformanceCase.run(harness)
        }

        let store = try await PostgresEventStore.open(probe)
        for id in ["acc-1", "Acc-2", "acc-3"] {
            try await store.append(AppendRequest(aggregateID: id, aggregateName: "A", expectedVersion: .noStream, events: [newEvent()]))
        }
        #expect(try await store.streams(after: nil, prefix: "acc-", limit: 10).map(\.aggregateID) == ["acc-1", "acc-3"])
        await store.close()
        for (after, names) in [(nil, Set<String>()), ("acc-1", ["A"])] as [(String?, Set<String>)] {
            let query = PostgresEventQueries.streams(after: after, prefix: "acc-", aggregateNames: names, limit: 10)
            let types = names.isEmpty ? "text, text, bigint" : "text, text, text[], bigint"
            let arguments = names.isEmpty ? "'acc-', 'acc-', 10" : "'\(after ?? "")', 'acc-', ARRAY['A'], 10"
            let plan = try await TestPostgres.psqlOutput(
                probe, "SET enable_seqscan = off; PREPARE listing(\(types)) AS \(query.sql); EXPLAIN EXECUTE listing(\(arguments))")
            #expect(plan.contains("fluxgate_events_by_aggregate_id"), "\(plan)")
            #expect(!plan.contains("Seq Scan"), "\(plan)")
        }
    }

    /// The append function refuses a request under another aggregate name than its stream's (outcome 3, with the
    /// stream's version) and goes on with the others of the call, each seeing the streams the earlier ones made.
    @Test func theAppendFunctionReportsANameMismatchPerRequest() async throws {
        let database = try await TestPostgres.shared.freshDatabase()
        let store = try await PostgresEventStore.open(database)
        try await store.append(AppendRequest(aggregateID: "order-1", aggregateName: "Order", expectedVersion: .noStream, events: [newEvent()]))
        await store.close()
        // Four requests of one event each: order-1 as an Account (refused), a new stream as a Basket, the same new
        // stream as an Order (refused: the request before made it a Basket), order-1 as an Order.
        let sql = """
            SELECT string_agg(format('%s/%s/%s', outcome, first_position, last_version), ' ') FROM fluxgate_append_v1(
                ARRAY['order-1', 'new', 'new', 'order-1'], ARRAY['Account', 'Basket', 'Order', 'Order'],
                ARRAY[-1, -1, -1, -1]::bigint[], ARRAY[9, 9, 9, 9]::bigint[], ARRAY[1, 1, 1, 1],
                ARRAY['x0', 'n0', 'y0', 'o1'], ARRAY['t', 't', 't', 't'], ARRAY['\\x7b7d', '\\x7b7d', '\\x7b7d', '\\x7b7d']::bytea[],
                ARRAY[1, 2, 3, 4], ARRAY[0, 0, 0, 0], 1)
            """
        let answer = try await TestPostgres.psqlOutput(database, sql)
        #expect(answer == "3//0 0/2/0 3//0 0/3/1", "\(answer)")
        let reopened = try await PostgresEventStore.open(database)
        #expect(try await reopened.read(after: .start, limit: 10).map(\.aggregateName) == ["Order", "Basket", "Order"])
        await reopened.close()
    }

    @Test func anUnreachableDatabaseIsAClearError() async throws {
        var options = PostgresEventStore.Options()
        options.operationTimeout = .seconds(3)
        let location = PostgresLocation(host: "127.0.0.1", port: 1, username: "nobody", database: "none")
        await #expect {
            _ = try await PostgresEventStore.connect(to: location, options: options, logger: quietLogger)
        } throws: { error in
            (error as? StoreError)?.code == .storeUnavailable && "\(error)".contains("127.0.0.1:1")
        }
    }

    @Test func aClosedStoreRefusesAppendsAndReads() async throws {
        let store = try await PostgresEventStore.open(try await TestPostgres.shared.freshDatabase())
        await store.close()
        await #expect(throws: StoreError.self) { try await store.append(AppendRequest(aggregateID: "x", aggregateName: "T", expectedVersion: .any, events: [newEvent()])) }
        await #expect(throws: StoreError.self) { _ = try await store.head() }
        await store.close()  // twice is harmless
    }

    /// A database restart: appends fail while it is down (clearly, within the timeout), work again after it, lose
    /// and repeat nothing, and the other node's listener reconnects by itself.
    @Test func survivesADatabaseRestart() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fluxgate-pg-restart-\(UUID().uuidString.prefix(8))").path
        let port = freeLoopbackPort()
        let server = try await TestPostgres.start(directory: directory, port: port)
        // Also when the test fails half-way: stop the server, then remove its files.
        try await withTeardown({
            try? await TestPostgres.stop(directory: directory)
            try? FileManager.default.removeItem(atPath: directory)
            try? FileManager.default.removeItem(atPath: directory + ".initdb.log")
        }) {
            let database = try await TestPostgres.createDatabase(on: server)
            var options = PostgresEventStore.Options.forTests
            options.operationTimeout = .seconds(30)  // appends fail clearly while the server is down, within this
            options.headPollInterval = .seconds(3600)  // only notifications wake the reader
            let writer = try await PostgresEventStore.open(database, options: options)
            let reader = try await PostgresEventStore.open(database, options: options)
            for _ in 0..<10 { try await writer.append(AppendRequest(aggregateID: "r", aggregateName: "T", expectedVersion: .any, events: [newEvent()])) }

            try await TestPostgres.stop(directory: directory)
            await #expect(throws: StoreError.self) {
                try await writer.append(AppendRequest(aggregateID: "r", aggregateName: "T", expectedVersion: .any, events: [newEvent()]))
            }
            _ = try await TestPostgres.start(directory: directory, port: port)

            // Appends work again once the pool has reconnected; a retry with the same event id is idempotent.
            let event = newEvent()
            var appended: AppendResult?
            let retryUntil = ContinuousClock.now + .seconds(90)
            while appended == nil && ContinuousClock.now < retryUntil {
                appended = try? await writer.append(AppendRequest(aggregateID: "r", aggregateName: "T", expectedVersion: .any, events: [event]))
                if appended == nil { try await Task.sleep(for: .milliseconds(250)) }
            }
            let result = try #require(appended, "the store reconnected after the restart")
            #expect(result.firstPosition == Position(11) || result.firstPosition == Position(12))
            // The reader's listener reconnected and hears the next commit.
            try await Task.sleep(for: .seconds(3))
            let head = try await reader.head()
            async let woken = reader.waitForHead(beyond: head, timeout: .seconds(30))
            try await writer.append(AppendRequest(aggregateID: "r", aggregateName: "T", expectedVersion: .any, events: [newEvent()]))
            #expect(try await woken == head.next)
            let positions = try await reader.read(after: .start, limit: 100).map(\.position.rawValue)
            #expect(positions == Array(1...head.next.rawValue), "dense, nothing lost or repeated")
            await writer.close()
            await reader.close()
        }
    }
}
