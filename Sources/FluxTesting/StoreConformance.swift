import FluxCore
import Foundation

/// How the conformance suite gets stores of one kind.
public struct StoreHarness: Sendable {
    /// Makes a new, empty store.
    public var make: @Sendable () async throws -> any EventStore
    /// Closes a store and opens the same data again; `nil` for stores that keep nothing (in memory).
    public var reopen: (@Sendable (any EventStore) async throws -> any EventStore)?

    public init(
        make: @escaping @Sendable () async throws -> any EventStore,
        reopen: (@Sendable (any EventStore) async throws -> any EventStore)?
    ) {
        self.make = make
        self.reopen = reopen
    }
}

/// A failed conformance expectation.
public struct ConformanceFailure: Error, CustomStringConvertible {
    public var description: String
}

/// One named case of the store conformance suite.
public struct ConformanceCase: Sendable, CustomStringConvertible {
    public let name: String
    let body: @Sendable (StoreHarness) async throws -> Void

    public var description: String { name }

    /// Runs the case against stores from `harness`; throws `ConformanceFailure` when the store misbehaves.
    public func run(_ harness: StoreHarness) async throws {
        try await body(harness)
    }
}

func expect(_ condition: Bool, _ message: @autoclosure () -> String, line: Int = #line) throws {
    if !condition { throw ConformanceFailure(description: "StoreConformance.swift:\(line): \(message())") }
}

func expectError(
    _ code: StoreError.Code, _ what: String, line: Int = #line, _ body: () async throws -> Void
) async throws -> StoreError {
    do {
        try await body()
    } catch let error as StoreError {
        try expect(error.code == code, "\(what): expected \(code), got \(error)", line: line)
        return error
    }
    throw ConformanceFailure(description: "StoreConformance.swift:\(line): \(what): expected \(code), but it succeeded")
}

func event(_ type: String = "test.Happened", id: String? = nil, json: String = #"{"n":1}"#) -> NewEvent {
    NewEvent(eventID: id, eventType: type, payload: EventPayload(trustedJSON: Array(json.utf8)))
}

func request(
    _ aggregateID: String, _ expected: ExpectedVersion, _ events: [NewEvent], name: String = "Thing"
) -> AppendRequest {
    AppendRequest(aggregateID: aggregateID, aggregateName: name, expectedVersion: expected, events: events)
}

/// Reads every event after `position`, page by page.
func readAll(_ store: any EventReader, after position: Position = .start, filter: EventFilter = .all) async throws -> [RecordedEvent] {
    var result: [RecordedEvent] = []
    var cursor = position
    while true {
        let page = try await store.read(after: cursor, limit: 97, filter: filter)
        result += page
        guard let last = page.last, page.count == 97 else { return result }
        cursor = last.position
    }
}

/// Checks that the store holds positions 1...head, each exactly once, in order.
func expectDense(_ store: any EventReader, count: Int, line: Int = #line) async throws {
    let all = try await readAll(store)
    try expect(all.count == count, "expected \(count) events, read \(all.count)", line: line)
    for (index, event) in all.enumerated() where event.position.rawValue != Int64(index + 1) {
        throw ConformanceFailure(description: "StoreConformance.swift:\(line): position \(index + 1) holds \(event.position): positions are not dense")
    }
    let head = try await store.head()
    try expect(head == Position(Int64(count)), "head is \(head), expected \(count)", line: line)
}

/// The store conformance suite: every store (memory, SQLite, PostgreSQL) must pass every case.
public enum StoreConformance {
    public static let cases: [ConformanceCase] = [
        ConformanceCase(name: "append and read back", body: appendAndRead),
        ConformanceCase(name: "expected version conflicts store nothing", body: conflicts),
        ConformanceCase(name: "multi-event appends are atomic and consecutive", body: multiEventAppend),
        ConformanceCase(name: "idempotent retries by event id", body: idempotency),
        ConformanceCase(name: "a stream belongs to one aggregate name", body: aggregateNameMismatch),
        ConformanceCase(name: "a name mismatch in a concurrent batch fails alone", body: aggregateNameMismatchInABatch),
        ConformanceCase(name: "invalid appends are rejected", body: invalidAppends),
        ConformanceCase(name: "control characters in ids and names: refused, and reads do not alias", body: controlCharacters),
        ConformanceCase(name: "names and event ids over 256 bytes are rejected", body: longNames),
        ConformanceCase(name: "a retry with other content is a duplicate event id", body: retryWithOtherContent),
        ConformanceCase(name: "paging", body: paging),
        ConformanceCase(name: "filters", body: filters),
        ConformanceCase(name: "stream reads", body: streamReads),
        ConformanceCase(name: "stream listing: byte order, keyset pages, summaries", body: streamListing),
        ConformanceCase(name: "stream listing: prefixes are literal, names narrow, bad text finds nothing", body: streamListingPrefixes),
        ConformanceCase(name: "event by id", body: eventByID),
        ConformanceCase(name: "payload bytes are kept exactly", body: payloadBytes),
        ConformanceCase(name: "waiting for the head", body: waitForHead),
        ConformanceCase(name: "8 concurrent writers on one stream: one winner per version", body: concurrentSameStream),
        ConformanceCase(name: "8 concurrent writers on different streams: dense positions", body: concurrentDifferentStreams),
        ConformanceCase(name: "reopen after close", body: reopen),
        ConformanceCase(name: "consumer groups: definitions, checkpoints and parked events, kept across a reopen", body: consumerGroups),
        ConformanceCase(name: "webhook sinks: definitions put, disabled and deleted, kept across a reopen", body: webhookSinks),
    ]

    static func webhookSinks(_ harness: StoreHarness) async throws {
        let store = try await harness.make()
        guard let sinks = store as? any WebhookSinkStore else {
            throw ConformanceFailure(description: "\(type(of: store)) does not keep webhook sinks (WebhookSinkStore)")
        }
        try expect(try await sinks.webhookSinks().isEmpty, "a new store has no webhook sinks")
        let policy = WebhookSinkPolicy(concurrency: 3, timeout: .milliseconds(1500), maximumAttempts: 9, backoff: .milliseconds(20), maximumBackoff: .seconds(9))
        let billing = try WebhookSinkDefinition(
            name: "billing", url: "https://example.com/hooks?x=ü", filter: EventFilter(aggregateNames: ["Account"]),
            secrets: ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_b2xk"], policy: policy)
        try expect(try await sinks.putWebhookSink(billing), "created")
        let audit = try WebhookSinkDefinition(name: "audit", url: "http://127.0.0.1:9/", secrets: ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"])
        try expect(try await sinks.putWebhookSink(audit), "created")
        try expect(try await sinks.webhookSinks().map(\.definition.name) == ["audit", "billing"], "listed by name")
        try expect(try await sinks.webhookSink(named: "billing") == WebhookSinkRecord(definition: billing), "read back as put")
        try await sinks.disableWebhookSink(named: "billing", reason: "410 ü")
        try expect(
            try await sinks.webhookSink(named: "billing") == WebhookSinkRecord(definition: billing, enabled: false, disabledReason: "410 ü"),
            "disabled with its reason")
        // A replacement of the stored form only: it keeps the sink disabled, and happens only over what it expects.
        var resealed = billing
        resealed.secrets = ["sealed:v1:first", "sealed:v1:second"]
        try expect(try await sinks.replaceWebhookSinkDefinition(resealed, ifStoredAs: billing), "replaced over what was stored")
        try expect(
            try await sinks.webhookSink(named: "billing") == WebhookSinkRecord(definition: resealed, enabled: false, disabledReason: "410 ü"),
            "a replacement leaves the sink disabled, with its reason")
        try expect(try await !sinks.replaceWebhookSinkDefinition(billing, ifStoredAs: billing), "nothing replaced over a definition no longer stored")
        let unknown = try WebhookSinkDefinition(name: "nope", url: audit.url, secrets: audit.secrets)
        try expect(try await !sinks.replaceWebhookSinkDefinition(unknown, ifStoredAs: unknown), "nothing replaced for an unknown sink")
        try expect(try await sinks.webhookSink(named: "billing")?.definition == resealed, "still the replacement")
        var changed = billing
        changed.url = "https://example.com/v2"
        changed.secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
        try expect(try await !sinks.putWebhookSink(changed), "replaced, not created")
        try expect(try await sinks.webhookSink(named: "billing") == WebhookSinkRecord(definition: changed), "replaced and enabled again")
        _ = try await expectError(.notFound, "disabling an unknown sink") { try await sinks.disableWebhookSink(named: "nope", reason: "") }
        try expect(try await sinks.webhookSink(named: "nope") == nil, "an unknown sink is nil")
        try expect(try await !sinks.deleteWebhookSink(named: "nope"), "deleting an unknown sink deletes nothing")
        var current = store
        if let reopen = harness.reopen {
            let before = try await sinks.webhookSinks()
            current = try await reopen(store)
            guard let reopened = current as? any WebhookSinkStore else { throw ConformanceFailure(description: "reopened store keeps no sinks") }
            try expect(try await reopened.webhookSinks() == before, "webhook sinks survive a reopen")
        }
        guard let kept = current as? any WebhookSinkStore else { return }
        try expect(try await kept.deleteWebhookSink(named: "billing"), "deleted")
        try expect(try await kept.webhookSinks().map(\.definition.name) == ["audit"], "the other sink stays")
    }

    static func consumerGroups(_ harness: StoreHarness) async throws {
        let store = try await harness.make()
        guard let groups = store as? any ConsumerGroupStore else {
            throw ConformanceFailure(description: "\(type(of: store)) does not keep consumer groups (ConsumerGroupStore)")
        }
        try expect(try await groups.consumerGroups().isEmpty, "a new store has no consumer groups")
        let policy = ConsumerGroupPolicy(
            leaseTimeout: .seconds(10), maximumAttempts: 3, backoff: .milliseconds(250), maximumBackoff: .seconds(8), holdsAggregateWhileParked: false)
        let billing = try ConsumerGroupDefinition(
            name: "billing.v2", filter: EventFilter(aggregateNames: ["Account"], eventTypes: ["a.B", "c.D"]), start: Position(7), policy: policy)
        let created = try await groups.createConsumerGroup(billing)
        try expect(created == ConsumerGroupRecord(definition: billing, checkpoint: Position(7)), "created: \(created)")
        _ = try await expectError(.conflict, "a second group of the same name") { _ = try await groups.createConsumerGroup(billing) }
        let audit = try ConsumerGroupDefinition(name: "audit")
        _ = try await groups.createConsumerGroup(audit)
        try expect(try await groups.consumerGroups().map(\.definition.name) == ["audit", "billing.v2"], "listed by name")

        let acknowledged = [Position(14)...Position(16), Position(20)...Position(20)]
        try await groups.saveConsumerGroupCheckpoint(Position(12), acknowledged: acknowledged, group: "billing.v2", reset: false)
        try await groups.parkConsumerGroupEvent(ParkedGroupEvent(position: Position(11), attempts: 3, reason: "boom", parkedAt: 1000), group: "billing.v2")
        try await groups.parkConsumerGroupEvent(ParkedGroupEvent(position: Position(9), attempts: 3, reason: "first", parkedAt: 900), group: "billing.v2")
        try await groups.parkConsumerGroupEvent(ParkedGroupEvent(position: Position(9), attempts: 4, reason: "again ü", parkedAt: 950), group: "billing.v2")
        var record = try await groups.consumerGroup(named: "billing.v2")
        try expect(record?.checkpoint == Position(12) && record?.acknowledged == acknowledged, "checkpoint and acknowledged saved: \(String(describing: record))")
        try expect(
            record?.parked == [
                ParkedGroupEvent(position: Position(9), attempts: 4, reason: "again ü", parkedAt: 950),
                ParkedGroupEvent(position: Position(11), attempts: 3, reason: "boom", parkedAt: 1000),
            ], "parked events, oldest first, a re-park replacing the record: \(String(describing: record?.parked))")
        try expect(try await groups.unparkConsumerGroupEvent(at: Position(11), group: "billing.v2"), "unparked")
        try expect(try await !groups.unparkConsumerGroupEvent(at: Position(11), group: "billing.v2"), "not parked any more")

        var changed = billing
        changed.filter = EventFilter(eventTypes: ["x.Y"])
        changed.policy.maximumAttempts = 7
        changed.policy.holdsAggregateWhileParked = true
        try await groups.updateConsumerGroup(changed)
        record = try await groups.consumerGroup(named: "billing.v2")
        try expect(
            record?.definition == changed && record?.checkpoint == Position(12) && record?.acknowledged == acknowledged && record?.parked.count == 1,
            "updated, state kept: \(String(describing: record))")

        try await groups.saveConsumerGroupCheckpoint(Position(8), acknowledged: [], group: "billing.v2", reset: true)
        record = try await groups.consumerGroup(named: "billing.v2")
        try expect(
            record?.checkpoint == Position(8) && record?.acknowledged == [] && record?.parked.isEmpty == true,
            "a reset drops the parked events after it: \(String(describing: record))")
        try await groups.parkConsumerGroupEvent(ParkedGroupEvent(position: Position(5), attempts: 1, reason: "kept", parkedAt: 1), group: "billing.v2")
        try await groups.saveConsumerGroupCheckpoint(Position(6), acknowledged: [], group: "billing.v2", reset: true)
        try expect(try await groups.consumerGroup(named: "billing.v2")?.parked.map(\.position) == [Position(5)], "and keeps those before it")

        let missing = try ConsumerGroupDefinition(name: "nope")
        _ = try await expectError(.notFound, "a checkpoint of an unknown group") { try await groups.saveConsumerGroupCheckpoint(Position(1), acknowledged: [], group: "nope", reset: false) }
        _ = try await expectError(.notFound, "parking in an unknown group") {
            try await groups.parkConsumerGroupEvent(ParkedGroupEvent(position: Position(1), attempts: 1, reason: "", parkedAt: 0), group: "nope")
        }
        _ = try await expectError(.notFound, "unparking in an unknown group") { _ = try await groups.unparkConsumerGroupEvent(at: Position(1), group: "nope") }
        _ = try await expectError(.notFound, "updating an unknown group") { try await groups.updateConsumerGroup(missing) }
        try expect(try await groups.consumerGroup(named: "nope") == nil, "an unknown group is nil")
        try expect(try await !groups.deleteConsumerGroup(named: "nope"), "deleting an unknown group deletes nothing")

        var current = store
        if let reopen = harness.reopen {
            let before = try await groups.consumerGroups()
            current = try await reopen(store)
            guard let reopened = current as? any ConsumerGroupStore else { throw ConformanceFailure(description: "reopened store keeps no groups") }
            try expect(try await reopened.consumerGroups() == before, "consumer groups survive a reopen")
        }
        guard let kept = current as? any ConsumerGroupStore else { return }
        try expect(try await kept.deleteConsumerGroup(named: "billing.v2"), "deleted")
        try expect(try await kept.consumerGroups().map(\.definition.name) == ["audit"], "the other group stays")
        try expect(try await kept.consumerGroup(named: "billing.v2") == nil, "gone with its state")
        _ = try await kept.createConsumerGroup(billing)
        try expect(try await kept.consumerGroup(named: "billing.v2")?.parked.isEmpty == true, "a group made again under the name starts clean")
    }

    static func appendAndRead(_ harness: StoreHarness) async throws {
        let store = try await harness.make()
        try expect(try await store.head() == .start, "a new store's head must be 0")
        try expect(try await store.read(after: .start, limit: 10).isEmpty, "a new store must be empty")
        let before = Timestamp.nowMilliseconds()
        let first = try await store.append(request("a-1", .noStream, [event("test.Created", id: "e1")], name: "Account"))
        try expect(first == AppendResult(aggregateID: "a-1", firstPosition: Position(1), lastPosition: Position(1), version: 0), "first append: \(first)")
        let second = try await store.append(request("b-1", .noStream, [event("test.Created", id: "e2")], name: "Basket"))
        try expect(second.firstPosition == Position(2) && second.version == 0, "second append: \(second)")
        let third = try await store.append(request("a-1", .exact(0), [event("test.Credited", id: "e3", json: #"{"amount":50}"#)], name: "Account"))
        try expect(third.firstPosition == Position(3) && third.version == 1, "third append: \(third)")
        let after = Timestamp.nowMilliseconds()

        let events = try await store.read(after: .start, limit: 10)
        try expect(events.map(\.position.rawValue) == [1, 2, 3], "positions \(events.map(\.position))")
        try expect(events.map(\.eventID) == ["e1", "e2", "e3"], "ids \(events.map(\.eventID))")
        try expect(events.map(\.aggregateID) == ["a-1", "b-1", "a-1"], "aggregate ids")
        try expect(events.map(\.aggregateName) == ["Account", "Basket", "Account"], "aggregate names")
        try expect(events.map(\.version) == [0, 0, 1], "versions \(events.map(\.version))")
        try expect(events.map(\.eventType) == ["test.Created", "test.Created", "test.Credited"], "types")
        try expect(events[2].payload.bytes == Array(#"{"amount":50}"#.utf8), "payload \(events[2].payload)")
        for event in events {
            try expect(event.recordedAtMilliseconds >= before - 1000 && event.recordedAtMilliseconds <= after + 1000, "recorded_at \(event.recordedAtMilliseconds) not near now")
        }
        try expect(try await store.head() == Position(3), "head after three appends")
    }

    static func conflicts(_ harness: StoreHarness) async throws {
        let store = try await harness.make()
        try await store.append(request("s", .noStream, [event(), event()]))
        let noStream = try await expectError(.conflict, "noStream on an existing stream") {
            _ = try await store.append(request("s", .noStream, [event()]))
        }
        try expect(noStream.currentVersion == 1, "conflict must report current version 1, got \(String(describing: noStream.currentVersion))")
        let stale = try await expectError(.conflict, "a stale exact version") {
            _ = try await store.append(request("s", .exact(0), [event(), event()]))
        }
        try expect(stale.currentVersion == 1, "conflict must report current version 1")
        let missing = try await expectError(.conflict, "exact version on a missing stream") {
            _ = try await store.append(request("missing", .exact(0), [event()]))
        }
        try expect(missing.currentVersion == -1, "a missing stream's current version is -1")
        try expect(try await store.head() == Position(2), "a conflict must store nothing")
        try expect(try await store.readStream("missing", fromVersion: 0, limit: 10).isEmpty, "a conflict must not create the stream")
        let exact = try await store.append(request("s", .exact(1), [event()]))
        try expect(exact.version == 2 && exact.firstPosition == Position(3), "exact append after conflicts: \(exact)")
        let any = try await store.append(request("s", .any, [event()]))
        try expect(any.version == 3, "any appends at the end: \(any)")
        let anyNew = try await store.append(request("t", .any, [event()]))
        try expect(anyNew.version == 0, "any on a new stream starts at version 0: \(anyNew)")
        try await expectDense(store, count: 5)
    }

    static func multiEventAppend(_ harness: StoreHarness) async throws {
        let store = try await harness.make()
        try await store.append(request("x", .noStream, [event()]))
        let result = try await store.append(request("y", .noStream, (0..<5).map { event(json: "{\"i\":\($0)}") }))
        try expect(result == AppendResult(aggregateID: "y", firstPosition: Position(2), lastPosition: Position(6), version: 4), "result \(result)")
        let stream = try await store.readStream("y", fromVersion: 0, limit: 100)
        try expect(stream.map(\.version) == [0, 1, 2, 3, 4], "versions \(stream.map(\.version))")
        try expect(stream.map(\.position.rawValue) == [2, 3, 4, 5, 6], "positions")
        try expect(stream.map(\.payload.description) == (0..<5).map { "{\"i\":\($0)}" }, "payloads in order")
        // A multi-event append that conflicts stores none of its events.
        _ = try await expectError(.conflict, "stale multi-event append") {
            _ = try await store.append(request("y", .exact(2), [event(), event(), event()]))
        }
        try await expectDense(store, count: 6)
    }

    static func idempotency(_ harness: StoreHarness) async throws {
        let store = try await harness.make()
        let original = request("s", .noStream, [event(id: "id-1"), event(id: "id-2")])
        let first = try await store.append(original)
        try await store.append(request("other", .noStream, [event(id: "id-3")]))
        let retry = try await store.append(original)
        try expect(retry == first, "a retry must answer as the first append did: \(retry) vs \(first)")
        try expect(retry.isReplay && !first.isReplay, "a retry says it stored nothing new: first \(first.isReplay), retry \(retry.isReplay)")
        try await expectDense(store, count: 3)
        _ = try await expectError(.duplicateEventID, "an event id stored in another stream") {
            _ = try await store.append(request("s2", .noStream, [event(id: "id-3")]))
        }
        _ = try await expectError(.duplicateEventID, "a partly stored append") {
            _ = try await store.append(request("s", .exact(1), [event(id: "id-2"), event(id: "id-9")]))
        }
        _ = try await expectError(.duplicateEventID, "stored ids in another order") {
            _ = try await store.append(request("s", .any, [event(id: "id-2"), event(id: "id-1")]))
        }
        try await expectDense(store, count: 3)
        try expect(try await store.event(id: "id-9") == nil, "nothing of a rejected append is stored")
    }

    static func aggregateNameMismatch(_ harness: StoreHarness) async throws {
        let store = try await harness.make()
        try await store.append(request("order-1", .noStream, [event(id: "o1"), event(id: "o2")], name: "Order"))
        for expected in [ExpectedVersion.any, .exact(1), .exact(0), .noStream] {
            let error = try await expectError(.aggregateNameMismatch, "another aggregate name, expected version \(expected)") {
                _ = try await store.append(request("order-1", expected, [event(id: "a-\(expected)")], name: "Account"))
            }
            try expect(error.storedAggregateName == "Order", "the error carries the stored name: \(String(describing: error.storedAggregateName))")
            try expect(
                error.message.contains("order-1") && error.message.contains("Order") && error.message.contains("Account"),
                "the message names the stream and both names: \(error.message)"
            )
            try expect(try await store.event(id: "a-\(expected)") == nil, "nothing of a refused append is stored")
        }
        let stream = try await store.readStream("order-1", fromVersion: 0, limit: 10)
        try expect(stream.map(\.eventID) == ["o1", "o2"], "the stream keeps only its own events: \(stream.map(\.eventID))")
        try expect(stream.allSatisfy { $0.aggregateName == "Order" }, "one aggregate name per stream")
        try await expectDense(store, count: 2)
        let same = try await store.append(request("order-1", .exact(1), [event(id: "o3")], name: "Order"))
        try expect(same.version == 2 && same.firstPosition == Position(3), "the stream's own name is accepted: \(same)")
        let other = try await store.append(request("account-1", .noStream, [event()], name: "Account"))
        try expect(other.version == 0, "another stream takes the other name: \(other)")
        try await expectDense(store, count: 4)
    }

    static func aggregateNameMismatchInABatch(_ harness: StoreHarness) async throws {
        let store = try await harness.make()
        try await store.append(request("order-1", .noStream, [event()], name: "Order"))
        // Concurrent appends share the writer's batches (group commit): the refused ones must fail alone.
        let outcomes = try await withThrowingTaskGroup(of: (String, Result<AppendResult, StoreError>).self) { group in
            for index in 0..<16 {
                let (aggregateID, name) = switch index % 4 {
                case 0: ("order-1", "Account")  // refused
                case 1: ("order-1", "Order")
                default: ("new-\(index)", "Other")
                }
                group.addTask {
                    do {
                        return (name, .success(try await store.append(request(aggregateID, .any, [event(), event()], name: name))))
                    } catch let error as StoreError {
                        return (name, .failure(error))
                    }
                }
            }
            return try await group.reduce(into: [(String, Result<AppendResult, StoreError>)]()) { $0.append($1) }
        }
        for (name, outcome) in outcomes {
            switch (name, outcome) {
            case ("Account", .failure(let error)):
                try expect(error.code == .aggregateNameMismatch, "a mismatch in a batch: \(error)")
            case ("Account", .success(let result)):
                throw ConformanceFailure(description: "an append under another name was stored: \(result)")
            case (_, .failure(let error)):
                throw ConformanceFailure(description: "an append of the batch failed with the mismatch beside it: \(error)")
            case (_, .success):
                break
            }
        }
        try await expectDense(store, count: 1 + 12 * 2)
        let stream = try await store.readStream("order-1", fromVersion: 0, limit: 100)
        try expect(stream.count == 9 && stream.allSatisfy { $0.aggregateName == "Order" }, "order-1 holds its own appends only")
        try expect(stream.map(\.version) == Array(0..<9), "versions \(stream.map(\.version))")
    }

    static func invalidAppends(_ harness: StoreHarness) async throws {
        let store = try await harness.make()
        _ = try await expectError(.invalidAppend, "no events") {
            _ = try await store.append(request("s", .any, []))
        }
        _ = try await expectError(.invalidAppend, "aggregate id over 256 bytes") {
            _ = try await store.append(request(String(repeating: "x", count: 257), .any, [event()]))
        }
        _ = try await expectError(.invalidAppend, "empty aggregate id") {
            _ = try await store.append(request("", .any, [event()]))
        }
        _ = try await expectError(.invalidAppend, "empty event type") {
            _ = try await store.append(request("s", .any, [event("")]))
        }
        _ = try await expectError(.invalidAppend, "one event id twice") {
            _ = try await store.append(request("s", .any, [event(id: "same"), event(id: "same")]))
        }
        let longest = String(repeating: "y", count: 256)
        let ok = try await store.append(request(longest, .noStream, [event()]))
        try expect(ok.firstPosition == Position(1), "a 256-byte aggregate id is accepted and nothing before it was stored")
    }

    static func controlCharacters(_ harness: StoreHarness) async throws {
        let store = try await harness.make()
        try await store.append(request("acc-1", .noStream, [event("t.A", id: "E1")], name: "Account"))
        let refused: [(field: String, request: AppendRequest, message: String)] = [
            ("aggregate_id", request("acc-1\u{0}x", .any, [event()]), "aggregate_id contains a control character (U+0000 at byte 5)"),
            ("aggregate_id", request("\u{7F}", .any, [event()]), "aggregate_id contains a control character (U+007F at byte 0)"),
            ("aggregate_name", request("s", .any, [event()], name: "Acc\u{1F}"), "aggregate_name contains a control character (U+001F at byte 3)"),
            ("event_type", request("s", .any, [event("t.\nA")]), "event_type contains a control character (U+000A at byte 2)"),
            ("event_id", request("s", .any, [event(id: "ok"), event(id: "E1\u{0}")]), "event_id contains a control character (U+0000 at byte 2)"),
            ("event_id", request("s", .any, [event(id: "é\t")]), "event_id contains a control character (U+0009 at byte 2)"),
        ]
        // Reads by an id or name with a control character find nothing, even where a store's text handling would
        // cut it at a NUL (SQLite's C strings) and find "acc-1" or "E1".
        try expect(try await store.readStream("acc-1\u{0}x", fromVersion: 0, limit: 10).isEmpty, "a stream read with a NUL aliases acc-1")
        try expect(try await store.event(id: "E1\u{0}") == nil, "an event read with a NUL aliases E1")
        try expect(try await store.event(id: "E1\u{0}x") == nil, "an event read with a NUL aliases E1")
        for filter in [
            EventFilter(aggregateIDs: ["acc-1\u{0}x"]), EventFilter(aggregateNames: ["Account\u{0}"]), EventFilter(eventTypes: ["t.A\u{0}"]),
            EventFilter(aggregateNames: ["Account"], eventTypes: ["t.A\u{1}"]),
        ] {
            try expect(try await store.read(after: .start, limit: 10, filter: filter).isEmpty, "a filter with a control character matches: \(filter)")
        }
        let mixed = EventFilter(aggregateIDs: ["acc-1", "acc-1\u{0}"])
        try expect(try await store.read(after: .start, limit: 10, filter: mixed).map(\.eventID) == ["E1"], "the other values of a filter still match")
        try expect(try await store.readStream("acc-1", fromVersion: 0, limit: 10).map(\.eventID) == ["E1"], "acc-1 itself is read")
        for (field, refusedRequest, message) in refused {
            let error = try await expectError(.invalidAppend, "a control character in \(field)") {
                _ = try await store.append(refusedRequest)
            }
            try expect(error.message.contains(message), "the message names the field and the byte: \(error.message)")
        }
        try await expectDense(store, count: 1)
        let printable = try await store.append(request("zürich ✓ 🚀", .noStream, [event("t.é", id: "~ü")], name: "Straße"))
        try expect(printable.firstPosition == Position(2), "printable non-ASCII text is accepted")
    }

    static func longNames(_ harness: StoreHarness) async throws {
        let store = try await harness.make()
        let long = String(repeating: "n", count: 257)
        for (field, refused) in [
            ("aggregate_name", request("s", .any, [event()], name: long)), ("event_type", request("s", .any, [event(long)])),
            ("event_id", request("s", .any, [event(id: long)])),
        ] {
            let error = try await expectError(.invalidAppend, "\(field) over 256 bytes") { _ = try await store.append(refused) }
            try expect(error.message.contains(field) && error.message.contains("256"), "the message names the field and the limit: \(error.message)")
        }
        let longest = String(repeating: "m", count: 256)
        let ok = try await store.append(request("s", .noStream, [event(longest, id: longest)], name: longest))
        try expect(ok.firstPosition == Position(1), "256-byte names and ids are accepted and nothing before them was stored")
    }

    static func retryWithOtherContent(_ harness: StoreHarness) async throws {
        let store = try await harness.make()
        let original = request("s", .noStream, [event("t.A", id: "r1", json: #"{"n":1}"#), event("t.B", id: "r2", json: #"[1,2]"#)], name: "Thing")
        let first = try await store.append(original)
        try expect(try await store.append(original) == first, "a retry with the same content answers as the first append did")
        var otherPayload = original
        otherPayload.events[1].payload = EventPayload(trustedJSON: Array(#"[1,3]"#.utf8))
        var respacedPayload = original
        respacedPayload.events[0].payload = EventPayload(trustedJSON: Array(#"{"n": 1}"#.utf8))
        var otherType = original
        otherType.events[0].eventType = "t.C"
        var otherName = original
        otherName.aggregateName = "Other"
        for (what, retry, clash, differs) in [
            ("another payload", otherPayload, "r2", "payload differs"), ("the payload's bytes respaced", respacedPayload, "r1", "payload differs"),
            ("another event type", otherType, "r1", "event_type differs"), ("another aggregate name", otherName, "r1", "aggregate_name differs"),
        ] {
            let error = try await expectError(.duplicateEventID, "a retry with \(what)") { _ = try await store.append(retry) }
            try expect(
                error.message.contains("event_id \(clash) is already stored with other content (\(differs))"),
                "the message names the event and what differs: \(error.message)"
            )
        }
        try await expectDense(store, count: 2)
        let stored = try await store.readStream("s", fromVersion: 0, limit: 10)
        try expect(stored.map(\.payload.description) == [#"{"n":1}"#, "[1,2]"] && stored.allSatisfy { $0.aggregateName == "Thing" }, "the stored events are unchanged")
        try expect(try await store.append(original) == first, "the original retry still answers as the first append did")
    }

    static func paging(_ harness: StoreHarness) async throws {
        let store = try await harness.make()
        for index in 0..<25 {
            try await store.append(request("s\(index % 3)", .any, [event(json: "{\"i\":\(index)}")]))
        }
        let page1 = try await store.read(after: .start, limit: 10)
        let page2 = try await store.read(after: Position(10), limit: 10)
        let page3 = try await store.read(after: Position(20), limit: 10)
        try expect(page1.map(\.position.rawValue) == Array(1...10), "page 1 \(page1.map(\.position))")
        try expect(page2.map(\.position.rawValue) == Array(11...20), "page 2")
        try expect(page3.map(\.position.rawValue) == Array(21...25), "page 3 is the short head page")
        try expect(try await store.read(after: Position(25), limit: 10).isEmpty, "nothing after the head")
        try expect(try await store.read(after: Position(1000), limit: 10).isEmpty, "nothing far beyond the head")
        try expect(try await store.read(after: .start, limit: 0).isEmpty, "limit 0 reads nothing")
        try expect(try await store.read(after: Position(24), limit: 1).map(\.payload.description) == ["{\"i\":24}"], "payload of the last event")
    }

    static func filters(_ harness: StoreHarness) async throws {
        let store = try await harness.make()
        try await store.append(request("a1", .noStream, [event("t.A"), event("t.B")], name: "Alpha"))
        try await store.append(request("b1", .noStream, [event("t.A"), event("t.C")], name: "Beta"))
        try await store.append(request("a2", .noStream, [event("t.B")], name: "Alpha"))
        func positions(_ filter: EventFilter, after: Position = .start, limit: Int = 100) async throws -> [Int64] {
            try await store.read(after: after, limit: limit, filter: filter).map(\.position.rawValue)
        }
        try expect(try await positions(EventFilter(eventTypes: ["t.A"])) == [1, 3], "by event type")
        try expect(try await positions(EventFilter(eventTypes: ["t.B", "t.C"])) == [2, 4, 5], "by two event types")
        try expect(try await positions(EventFilter(aggregateNames: ["Alpha"])) == [1, 2, 5], "by aggregate name")
        try expect(try await positions(EventFilter(aggregateIDs: ["b1"])) == [3, 4], "by aggregate id")
        try expect(try await positions(EventFilter(aggregateNames: ["Alpha"], eventTypes: ["t.B"])) == [2, 5], "name and type together")
        try expect(try await positions(EventFilter(eventTypes: ["none"])).isEmpty, "no match")
        try expect(try await positions(EventFilter(aggregateNames: ["Alpha"]), after: Position(1), limit: 1) == [2], "filter with after and limit")
        try expect(try await positions(EventFilter(aggregateNames: ["Alpha"]), after: Position(2), limit: 1) == [5], "limit counts matching events only")
    }

    static func streamReads(_ harness: StoreHarness) async throws {
        let store = try await harness.make()
        for index in 0..<12 {
            try await store.append(request(index % 2 == 0 ? "even" : "odd", .any, [event(json: "\(index)")]))
        }
        let all = try await store.readStream("even", fromVersion: 0, limit: 100)
        try expect(all.map(\.version) == [0, 1, 2, 3, 4, 5], "stream versions \(all.map(\.version))")
        try expect(all.map(\.payload.description) == ["0", "2", "4", "6", "8", "10"], "stream payloads")
        let middle = try await store.readStream("even", fromVersion: 2, limit: 3)
        try expect(middle.map(\.version) == [2, 3, 4], "from version 2, limit 3")
        try expect(try await store.readStream("even", fromVersion: 6, limit: 3).isEmpty, "past the stream's end")
        try expect(try await store.readStream("none", fromVersion: 0, limit: 3).isEmpty, "unknown stream")
    }

    /// Ids whose byte order differs from a naive order: upper case before lower, `-` (0x2D) before digits, `_` (0x5F)
    /// and `%` (0x25) that SQL LIKE would read as wildcards, a multi-byte character after every ASCII one.
    static let listedIDs = ["acc-1", "acc-10", "acc-2", "Acc-3", "acc_x", "acc%y", "acc", "accX", "b-1", "é-1", "acc-1é"]

    /// Every listed stream, page by page.
    static func listAll(_ store: any EventReader, prefix: String = "", names: Set<String> = [], limit: Int) async throws -> [StreamSummary] {
        var result: [StreamSummary] = []
        var cursor: String?
        for _ in 0..<100 {
            let page = try await store.streams(after: cursor, prefix: prefix, aggregateNames: names, limit: limit)
            try expect(page.count <= limit, "a page of \(page.count) streams is over its limit \(limit)")
            result += page
            guard let last = page.last, page.count == limit else { return result }
            cursor = last.aggregateID
        }
        throw ConformanceFailure(description: "the stream listing did not end after 100 pages")
    }

    static func streamListing(_ harness: StoreHarness) async throws {
        let store = try await harness.make()
        try expect(try await store.streams(after: nil, limit: 10).isEmpty, "a new store lists no stream")
        var appendedAt: [String: Int64] = [:]
        for (index, id) in listedIDs.enumerated() {
            let count = index % 3 + 1
            let before = Timestamp.nowMilliseconds()
            try await store.append(request(id, .noStream, (0..<count).map { _ in event() }, name: index % 2 == 0 ? "Even" : "Odd"))
            appendedAt[id] = before
        }
        // A later append moves a stream's last event, not its place in the listing.
        try await store.append(request("acc-2", .exact(2), [event()], name: "Even"))
        let expected = listedIDs.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
        try expect(expected.first == "Acc-3" && expected.last == "é-1", "the test's own byte order: \(expected)")

        let all = try await store.streams(after: nil, limit: 100)
        try expect(all.map(\.aggregateID) == expected, "streams in UTF-8 byte order: \(all.map(\.aggregateID))")
        let events = try await readAll(store)
        for summary in all {
            let stream = events.filter { $0.aggregateID.utf8.elementsEqual(summary.aggregateID.utf8) }
            guard let last = stream.last else { throw ConformanceFailure(description: "listed stream \(summary.aggregateID) has no events") }
            try expect(
                summary == StreamSummary(lastEvent: last) && summary.eventCount == Int64(stream.count),
                "summary of \(summary.aggregateID): \(summary), its last event is \(last)"
            )
            try expect(summary.lastRecordedAtMilliseconds >= appendedAt[summary.aggregateID] ?? .max, "recorded_at of \(summary.aggregateID)")
        }
        let last = all.first { $0.aggregateID == "acc-2" }
        try expect(last?.version == 3 && last?.lastPosition == Position(Int64(events.count)), "acc-2's last event is the last append: \(String(describing: last))")

        for limit in [1, 2, 3, 5, 11, 12] {
            let paged = try await listAll(store, limit: limit)
            try expect(paged.map(\.aggregateID) == expected, "pages of \(limit) list every stream once, in order: \(paged.map(\.aggregateID))")
        }
        try expect(try await store.streams(after: "acc-10", limit: 2).map(\.aggregateID) == ["acc-1é", "acc-2"], "after an id: the next ones")
        try expect(try await store.streams(after: "acc-0", limit: 1).map(\.aggregateID) == ["acc-1"], "after an id that is not stored")
        try expect(try await store.streams(after: "é-1", limit: 10).isEmpty, "after the last id: nothing")
        try expect(try await store.streams(after: nil, limit: 0).isEmpty, "limit 0 lists nothing")

        // A stream created after a page was read is listed where it sorts.
        try await store.append(request("acc-15", .noStream, [event()], name: "Even"))
        try expect(try await store.streams(after: "acc-10", limit: 1).map(\.aggregateID) == ["acc-15"], "a new stream is listed in its place")
    }

    static func streamListingPrefixes(_ harness: StoreHarness) async throws {
        let store = try await harness.make()
        for (index, id) in listedIDs.enumerated() {
            try await store.append(request(id, .noStream, [event()], name: index % 2 == 0 ? "Even" : "Odd"))
        }
        func ids(after cursor: String? = nil, _ prefix: String, names: Set<String> = [], limit: Int = 100) async throws -> [String] {
            try await store.streams(after: cursor, prefix: prefix, aggregateNames: names, limit: limit).map(\.aggregateID)
        }
        try expect(try await ids("acc-") == ["acc-1", "acc-10", "acc-1é", "acc-2"], "prefix acc-")
        try expect(try await ids("acc") == ["acc", "acc%y", "acc-1", "acc-10", "acc-1é", "acc-2", "accX", "acc_x"], "prefix acc (the id itself included)")
        try expect(try await ids("acc_") == ["acc_x"], "_ is literal, not a one-character wildcard")
        try expect(try await ids("acc%") == ["acc%y"], "% is literal, not a wildcard")
        try expect(try await ids("Acc") == ["Acc-3"], "prefixes are case-sensitive")
        try expect(try await ids("é") == ["é-1"], "a multi-byte prefix")
        try expect(try await ids("acc-1é") == ["acc-1é"], "a whole id as its own prefix")
        try expect(try await ids("zz").isEmpty, "a prefix matching nothing")
        try expect(try await ids("acc-3").isEmpty, "a prefix matching nothing but another case")
        try expect(try await ids(after: "a", "acc-", limit: 2) == ["acc-1", "acc-10"], "a cursor before the prefix starts at the prefix")
        try expect(try await ids(after: "acc-10", "acc-") == ["acc-1é", "acc-2"], "a cursor inside the prefix continues after it")
        try expect(try await ids(after: "b", "acc-").isEmpty, "a cursor past the prefix lists nothing")
        let even = listedIDs.enumerated().filter { $0.offset % 2 == 0 }.map(\.element).sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
        try expect(try await ids("", names: ["Even"]) == even, "only the streams of a name")
        try expect(try await listAll(store, names: ["Even"], limit: 2).map(\.aggregateID) == even, "pages of one name")
        try expect(try await ids("acc-", names: ["Odd"]) == ["acc-10"], "a prefix and a name")
        try expect(try await ids("", names: ["None"]).isEmpty, "a name no stream has")
        try expect(try await ids("", names: ["Even", "Odd"]).count == listedIDs.count, "both names")
        try expect(try await ids("acc\u{0}").isEmpty, "a prefix with a NUL finds nothing")
        try expect(try await ids("acc\u{1F}").isEmpty, "a prefix with a control character finds nothing")
        try expect(try await ids(after: "acc\u{0}x", "").isEmpty, "a cursor with a control character finds nothing")
        try expect(try await ids("", names: ["Even\u{0}"]).isEmpty, "a name with a control character finds nothing")
    }

    static func eventByID(_ harness: StoreHarness) async throws {
        let store = try await harness.make()
        try await store.append(request("s", .noStream, [event("t.X", id: "known", json: #"{"k":true}"#)]))
        let found = try await store.event(id: "known")
        try expect(found?.eventType == "t.X" && found?.payload.description == #"{"k":true}"# && found?.position == Position(1), "found \(String(describing: found))")
        try expect(try await store.event(id: "unknown") == nil, "unknown id")
    }

    static func payloadBytes(_ harness: StoreHarness) async throws {
        let store = try await harness.make()
        let payloads = [
            #"{ "spaced" : [1, 2.50, -3e2] , "unicode": "zürich ✓ 🚀", "escaped": "a\"b\\c\u00e9\n" }"#,
            "null", "true", "12345678901234567890", #""just a string""#, "[]", "{}",
            "{\"big\":\"" + String(repeating: "x", count: 100_000) + "\"}",
        ]
        for (index, json) in payloads.enumerated() {
            try await store.append(request("p", .any, [event(id: "p\(index)", json: json)]))
        }
        let events = try await store.read(after: .start, limit: 100)
        for (event, json) in zip(events, payloads) {
            try expect(event.payload.bytes == Array(json.utf8), "payload \(event.eventID) changed: \(event.payload.description.prefix(80))")
        }
    }

    static func waitForHead(_ harness: StoreHarness) async throws {
        let store = try await harness.make()
        try await store.append(request("s", .any, [event()]))
        let immediate = try await store.waitForHead(beyond: .start, timeout: .seconds(5))
        try expect(immediate == Position(1), "head already beyond: \(immediate)")
        let started = ContinuousClock.now
        let timedOut = try await store.waitForHead(beyond: Position(1), timeout: .milliseconds(100))
        try expect(timedOut == Position(1), "a wait that times out returns the current head")
        try expect(ContinuousClock.now - started >= .milliseconds(90), "the wait must last its timeout")
        async let woken = store.waitForHead(beyond: Position(1), timeout: .seconds(120))
        try await Task.sleep(for: .milliseconds(50))
        try await store.append(request("s", .any, [event(), event()]))
        let head = try await woken
        try expect(head == Position(3), "an append wakes the waiter with the new head, got \(head)")
        try expect(ContinuousClock.now - started < .seconds(60), "the waiter was woken, not timed out")
    }

    static func concurrentSameStream(_ harness: StoreHarness) async throws {
        let store = try await harness.make()
        let versions = 40
        // Each writer tries to append every version; exactly one must win each.
        let wins = try await withThrowingTaskGroup(of: [Int64].self) { group in
            for writer in 0..<8 {
                group.addTask {
                    var won: [Int64] = []
                    var next: Int64 = -1
                    while next < Int64(versions - 1) {
                        let expected: ExpectedVersion = next == -1 ? .noStream : .exact(next)
                        do {
                            let result = try await store.append(request("contended", expected, [event(id: "w\(writer)-v\(next + 1)")]))
                            won.append(result.version)
                            next = result.version
                        } catch let error as StoreError where error.code == .conflict {
                            guard let current = error.currentVersion else {
                                throw ConformanceFailure(description: "a conflict must carry the current version")
                            }
                            next = current
                        }
                    }
                    return won
                }
            }
            var all: [Int64] = []
            for try await won in group { all += won }
            return all
        }
        try expect(wins.sorted() == (0..<Int64(versions)).map { $0 }, "exactly one winner per version: \(wins.sorted())")
        let stream = try await store.readStream("contended", fromVersion: 0, limit: 1000)
        try expect(stream.map(\.version) == (0..<Int64(versions)).map { $0 }, "stream versions")
        try await expectDense(store, count: versions)
    }

    static func concurrentDifferentStreams(_ harness: StoreHarness) async throws {
        let store = try await harness.make()
        let perWriter = 50
        try await withThrowingTaskGroup(of: Void.self) { group in
            for writer in 0..<8 {
                group.addTask {
                    for index in 0..<perWriter {
                        let expected: ExpectedVersion = index == 0 ? .noStream : .exact(Int64(index - 1))
                        let result = try await store.append(request("w\(writer)", expected, [event(json: "\(index)")]))
                        try expect(result.version == Int64(index), "writer \(writer) got version \(result.version) for its append \(index)")
                    }
                }
            }
            try await group.waitForAll()
        }
        try await expectDense(store, count: 8 * perWriter)
        // Each stream's events are in version order by position too.
        let all = try await readAll(store)
        for writer in 0..<8 {
            let versions = all.filter { $0.aggregateID == "w\(writer)" }.map(\.version)
            try expect(versions == (0..<Int64(perWriter)).map { $0 }, "stream w\(writer) in position order has versions \(versions)")
        }
    }

    static func reopen(_ harness: StoreHarness) async throws {
        guard let reopen = harness.reopen else { return }  // nothing persists: the case does not apply
        let store = try await harness.make()
        try await store.append(request("s", .noStream, [event(id: "r1"), event(id: "r2")]))
        try await store.append(request("t", .noStream, [event(id: "r3")]))
        let epoch = store.epoch
        let reopened = try await reopen(store)
        try expect(reopened.epoch == epoch, "the epoch must survive a reopen")
        try await expectDense(reopened, count: 3)
        try expect(try await reopened.event(id: "r2")?.version == 1, "events survive a reopen")
        let next = try await reopened.append(request("s", .exact(1), [event(id: "r4")]))
        try expect(next.firstPosition == Position(4) && next.version == 2, "positions and versions continue after a reopen: \(next)")
        let retry = try await reopened.append(request("t", .noStream, [event(id: "r3")]))
        try expect(retry.firstPosition == Position(3), "idempotency survives a reopen")
    }
}
