import FluxCore
import Logging
import Synchronization
import Testing

@testable import FluxGateway

/// Bounds a hostile member cannot push past: members per group, and the bytes a group reads ahead.
@Suite struct ConsumerGroupRuntimeTests {
    static func runtime(_ store: InMemoryEventStore, _ definition: ConsumerGroupDefinition) async throws -> ConsumerGroupRuntime {
        let record = try await store.createConsumerGroup(definition)
        var logger = Logger(label: "test.groups")
        logger.logLevel = .critical
        return try await ConsumerGroupRuntime.start(record: record, store: store, logger: logger)
    }

    @Test func aGroupKeepsAtMostItsMaximumOfMembers() async throws {
        let store = InMemoryEventStore()
        let runtime = try await Self.runtime(store, try ConsumerGroupDefinition(name: "g"))
        for index in 0..<ConsumerGroupRuntime.maximumMembers {
            _ = try await runtime.fetch(member: "m\(index)", max: 1, wait: .zero)
        }
        await #expect(throws: TooManyMembers.self) { _ = try await runtime.fetch(member: "one-more", max: 1, wait: .zero) }
        _ = try await runtime.fetch(member: "m7", max: 1, wait: .zero)  // a known member still fetches
        #expect(await runtime.status.members.count == ConsumerGroupRuntime.maximumMembers)
    }

    @Test func theWindowStopsReadingAtItsBytes() throws {
        typealias Ledger = GroupLedger<ContinuousClock.Instant>
        var policy = Ledger.Policy()
        policy.windowBytes = 1000
        var ledger = Ledger(checkpoint: .start, policy: policy)
        let big = EventPayload(trustedJSON: Array(("\"" + String(repeating: "x", count: 600) + "\"").utf8))
        let events = (1...2).map { index in
            RecordedEvent(
                eventID: "e\(index)", position: Position(Int64(index)), aggregateID: "a\(index)", aggregateName: "A", version: 0,
                eventType: "t", recordedAtMilliseconds: 0, payload: big)
        }
        ledger.add(events, readThrough: Position(2))
        #expect(ledger.wantedEvents == 0, "1,204 bytes of payload held: no more reads")
        ledger.join(1, credit: 10)
        let leased = try ledger.lease(to: 1, max: 10, now: .now)
        try ledger.acknowledge(leased.map(\.event.position), by: 1)
        #expect(ledger.windowBytes == 0)
        #expect(ledger.wantedEvents == policy.window)
    }

    /// A store whose next `parks` park writes fail (a database that is away for a moment).
    final class FlakyParking: EventStore, ConsumerGroupStore {
        let base = InMemoryEventStore()
        let failures = Mutex(0)
        var epoch: StoreEpoch { base.epoch }
        func head() async throws -> Position { try await base.head() }
        func read(after position: Position, limit: Int, filter: EventFilter) async throws -> [RecordedEvent] {
            try await base.read(after: position, limit: limit, filter: filter)
        }
        func readStream(_ aggregateID: String, fromVersion: Int64, limit: Int) async throws -> [RecordedEvent] {
            try await base.readStream(aggregateID, fromVersion: fromVersion, limit: limit)
        }
        func event(id: String) async throws -> RecordedEvent? { try await base.event(id: id) }
        func streams(after cursor: String?, prefix: String, aggregateNames: Set<String>, limit: Int) async throws -> [StreamSummary] {
            try await base.streams(after: cursor, prefix: prefix, aggregateNames: aggregateNames, limit: limit)
        }
        func waitForHead(beyond position: Position, timeout: Duration) async throws -> Position {
            try await base.waitForHead(beyond: position, timeout: timeout)
        }
        func append(_ request: AppendRequest) async throws -> AppendResult { try await base.append(request) }
        func consumerGroups() async throws -> [ConsumerGroupRecord] { try await base.consumerGroups() }
        func consumerGroup(named name: String) async throws -> ConsumerGroupRecord? { try await base.consumerGroup(named: name) }
        func createConsumerGroup(_ definition: ConsumerGroupDefinition) async throws -> ConsumerGroupRecord {
            try await base.createConsumerGroup(definition)
        }
        func updateConsumerGroup(_ definition: ConsumerGroupDefinition) async throws { try await base.updateConsumerGroup(definition) }
        func deleteConsumerGroup(named name: String) async throws -> Bool { try await base.deleteConsumerGroup(named: name) }
        func saveConsumerGroupCheckpoint(_ position: Position, acknowledged: [ClosedRange<Position>], group name: String, reset: Bool) async throws {
            try await base.saveConsumerGroupCheckpoint(position, acknowledged: acknowledged, group: name, reset: reset)
        }
        func parkConsumerGroupEvent(_ parked: ParkedGroupEvent, group name: String) async throws {
            let fail = failures.withLock { count in
                defer { count = max(0, count - 1) }
                return count > 0
            }
            if fail { throw StoreError(.storeUnavailable, "the database is away for a moment") }
            try await base.parkConsumerGroupEvent(parked, group: name)
        }
        func unparkConsumerGroupEvent(at position: Position, group name: String) async throws -> Bool {
            try await base.unparkConsumerGroupEvent(at: position, group: name)
        }
    }

    /// A parked event whose record cannot be written yet is written by a later call, and no checkpoint is stored past
    /// it meanwhile: a stop in between must not lose it. Its reason is stored without control characters.
    @Test func aParkThatCouldNotBeStoredIsRetriedAndHoldsTheStoredCheckpoint() async throws {
        let store = FlakyParking()
        for aggregate in ["a", "b"] {
            _ = try await store.append(AppendRequest(aggregateID: aggregate, aggregateName: "A", expectedVersion: .any, events: [NewEvent(eventType: "t", payload: .null)]))
        }
        let record = try await store.createConsumerGroup(try ConsumerGroupDefinition(name: "g", policy: ConsumerGroupPolicy(maximumAttempts: 1)))
        var logger = Logger(label: "test.groups")
        logger.logLevel = .critical
        let runtime = try await ConsumerGroupRuntime.start(record: record, store: store, logger: logger)
        #expect(try await runtime.fetch(member: "m", max: 10, wait: .zero).deliveries.map(\.event.position) == [Position(1), Position(2)])
        store.failures.withLock { $0 = 2 }
        await #expect(throws: StoreError.self) { try await runtime.reject(Position(1), by: "m", reason: "bad\u{0}data\nhere") }
        await #expect(throws: StoreError.self) { try await runtime.acknowledge([Position(2)], by: "m") }
        var stored = try await store.consumerGroup(named: "g")
        #expect(stored?.checkpoint == .start && stored?.parked.isEmpty == true, "nothing stored past the unstored park: \(String(describing: stored))")
        _ = try await runtime.fetch(member: "m", max: 10, wait: .zero)  // the database is back
        stored = try await store.consumerGroup(named: "g")
        #expect(stored?.parked.map(\.position) == [Position(1)])
        #expect(stored?.parked.first?.reason == "bad data here")
        #expect(stored?.checkpoint == Position(2))
    }

    @Test func aFlushStoresAtOnceWhatBackgroundAcknowledgementsLeftWaiting() async throws {
        // A background write waits its interval after the one before (an hour here): what was acknowledged meanwhile
        // is stored only by the flush of a stopping member, which must not wait for the interval.
        let store = InMemoryEventStore()
        for aggregate in ["a", "b", "c"] {
            _ = try await store.append(AppendRequest(aggregateID: aggregate, aggregateName: "A", expectedVersion: .any, events: [NewEvent(eventType: "t", payload: .null)]))
        }
        let record = try await store.createConsumerGroup(try ConsumerGroupDefinition(name: "g"))
        var logger = Logger(label: "test.groups")
        logger.logLevel = .critical
        let runtime = try await ConsumerGroupRuntime.start(record: record, store: store, logger: logger, backgroundSaveInterval: .seconds(3600))
        #expect(try await runtime.fetch(member: "m", max: 10, wait: .zero).deliveries.count == 3)
        try await runtime.acknowledgeInBackground([Position(1)], by: "m")
        try await SubscriptionHubTests.waitUntil { try await store.consumerGroup(named: "g")?.checkpoint == Position(1) }
        // The next write waits for the interval: these stay unstored…
        try await runtime.acknowledgeInBackground([Position(2)], by: "m")
        try await runtime.acknowledgeInBackground([Position(3)], by: "m")
        try await Task.sleep(for: .milliseconds(200))
        #expect(try await store.consumerGroup(named: "g")?.checkpoint == Position(1))
        // …until the flush, which returns once they are stored (long before the hour).
        let flushed = ContinuousClock.now
        await runtime.flush()
        #expect(ContinuousClock.now - flushed < .seconds(60))
        #expect(try await store.consumerGroup(named: "g")?.checkpoint == Position(3))
    }

    @Test func reasonsAreStoredWithoutControlCharactersAndCutAtACharacter() {
        #expect(ConsumerGroupRuntime.storable("a\u{0}b\u{7F}c\td") == "a b c d")
        let long = ConsumerGroupRuntime.storable(String(repeating: "ü", count: 800))
        #expect(long.utf8.count <= ConsumerGroupRuntime.maximumReasonBytes && long.utf8.count >= ConsumerGroupRuntime.maximumReasonBytes - 1)
        #expect(long.allSatisfy { $0 == "ü" })
    }
}
