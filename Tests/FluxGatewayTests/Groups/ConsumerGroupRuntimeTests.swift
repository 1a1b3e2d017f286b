import FluxCore
import Logging
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
}
