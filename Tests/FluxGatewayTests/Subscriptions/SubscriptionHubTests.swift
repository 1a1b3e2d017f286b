import FluxCore
import Logging
import Synchronization
import Testing

@testable import FluxGateway

/// The hub's handover rules, without sockets: when a subscriber may join the live tail, what it is sent, and where
/// it stands when it is detached.
@Suite struct SubscriptionHubTests {
    /// Records the batches the hub offers; refuses them once told to (a subscriber past its high-water mark).
    final class RecordingSink: SubscriberSink {
        private let state = Mutex<(positions: [Int64], refusing: Bool)>(([], false))

        var positions: [Int64] { state.withLock { $0.positions } }
        func refuse() { state.withLock { $0.refusing = true } }

        func offer(_ batch: DeliveryBatch, writes: OutboundWriteBatch) -> Bool {
            state.withLock { state in
                guard !state.refusing else { return false }
                state.positions += batch.events.map(\.position.rawValue)
                return true
            }
        }
    }

    static func append(_ store: InMemoryEventStore, _ count: Int, stream: String = "s") async throws {
        for _ in 0..<count {
            try await store.append(
                AppendRequest(aggregateID: stream, aggregateName: "T", expectedVersion: .any, events: [NewEvent(eventType: "t.E", payload: .null)]))
        }
    }

    /// A hub running over `store` (its dispatch point set to the store's head), stopped and awaited at the end.
    static func withHub(_ store: InMemoryEventStore, _ body: (SubscriptionHub) async throws -> Void) async throws {
        var logger = Logger(label: "test.hub")
        logger.logLevel = .critical
        let hub = SubscriptionHub(store: store, pageSize: 100, logger: logger)
        let run = Task { try await hub.run(safetyPoll: .milliseconds(50)) }
        do {
            try await waitUntil { if case .joined = hub.join(id: 0, position: try await store.head(), filter: .all, baseURL: "", sink: RecordingSink()) { true } else { false } }
            hub.leave(id: 0)
            try await body(hub)
        } catch {
            run.cancel()
            hub.stop()
            _ = try? await run.value
            throw error
        }
        run.cancel()
        hub.stop()
        _ = try? await run.value
    }

    /// Polls `condition` every 5 ms, for at most 60 s (a bound, not a wait for a timeout: in a loaded full-suite run
    /// on two cores every task of the process was seen held up for over 10 s at once).
    static func waitUntil(_ condition: () async throws -> Bool, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let deadline = ContinuousClock.now + .seconds(60)
        while try await !condition() {
            guard ContinuousClock.now < deadline else {
                Issue.record("the condition did not hold within 60 s", sourceLocation: sourceLocation)
                return
            }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    @Test func aSubscriberJoinsOnlyOnceItHasReadUpToTheDispatchPoint() async throws {
        let store = InMemoryEventStore()
        try await Self.append(store, 5)
        try await Self.withHub(store) { hub in
            guard case .behind(let dispatched) = hub.join(id: hub.makeSubscriberID(), position: Position(3), filter: .all, baseURL: "", sink: RecordingSink())
            else {
                Issue.record("a subscriber at 3 joined a hub that dispatched through 5")
                return
            }
            #expect(dispatched == Position(5))
            let id = hub.makeSubscriberID()
            guard case .joined = hub.join(id: id, position: Position(5), filter: .all, baseURL: "", sink: RecordingSink()) else {
                Issue.record("a subscriber at the dispatch point did not join")
                return
            }
            #expect(hub.liveCount == 1)
            hub.leave(id: id)
        }
    }

    @Test func aLiveSubscriberGetsEachNewMatchingEventOnce() async throws {
        let store = InMemoryEventStore()
        try await Self.withHub(store) { hub in
            let all = RecordingSink()
            let onlyB = RecordingSink()
            let (first, second) = (hub.makeSubscriberID(), hub.makeSubscriberID())
            _ = hub.join(id: first, position: .start, filter: .all, baseURL: "", sink: all)
            _ = hub.join(id: second, position: .start, filter: EventFilter(aggregateIDs: ["b"]), baseURL: "", sink: onlyB)
            try await Self.append(store, 3, stream: "a")
            try await Self.append(store, 2, stream: "b")
            try await Self.waitUntil { all.positions.count == 5 && onlyB.positions.count == 2 }
            #expect(all.positions == [1, 2, 3, 4, 5])
            #expect(onlyB.positions == [4, 5])
            hub.leave(id: first)
            hub.leave(id: second)
        }
    }

    /// A subscriber whose sink refuses a batch is detached at the position it had reached, and counted.
    @Test func aRefusingSubscriberIsDetachedWhereItStood() async throws {
        let store = InMemoryEventStore()
        try await Self.withHub(store) { hub in
            let sink = RecordingSink()
            let id = hub.makeSubscriberID()
            _ = hub.join(id: id, position: .start, filter: .all, baseURL: "", sink: sink)
            try await Self.append(store, 2)
            try await Self.waitUntil { sink.positions.count == 2 }
            sink.refuse()
            try await Self.append(store, 3)
            let stoppedAt = await hub.detached(id: id, joinedAt: .start)
            #expect(stoppedAt == Position(2))
            #expect(hub.fellBehindCount == 1)
            #expect(hub.liveCount == 0)
        }
    }

    /// A subscriber that read ahead of the hub (from the store) is sent only what comes after its own position.
    @Test func aSubscriberAheadOfTheHubSkipsWhatItHas() async throws {
        let store = InMemoryEventStore()
        var logger = Logger(label: "test.hub")
        logger.logLevel = .critical
        let hub = SubscriptionHub(store: store, pageSize: 100, logger: logger)
        // The hub sets its dispatch point (0), then pauses while 5 events are stored.
        let first = Task { try await hub.run(safetyPoll: .milliseconds(50)) }
        try await Self.waitUntil { if case .joined = hub.join(id: 0, position: .start, filter: .all, baseURL: "", sink: RecordingSink()) { true } else { false } }
        hub.leave(id: 0)
        first.cancel()
        _ = try? await first.value
        try await Self.append(store, 5)
        let sink = RecordingSink()
        let id = hub.makeSubscriberID()
        guard case .joined = hub.join(id: id, position: Position(3), filter: .all, baseURL: "", sink: sink) else {
            Issue.record("a subscriber at 3 did not join a hub at 0")
            return
        }
        let resumed = Task { try await hub.run(safetyPoll: .milliseconds(50)) }
        try await Self.waitUntil { sink.positions.count == 2 }
        #expect(sink.positions == [4, 5])
        resumed.cancel()
        hub.stop()
        _ = try? await resumed.value
    }

    /// Leaving, or the hub stopping, wakes a subscriber waiting to be detached; after a stop nobody joins.
    @Test func leavingOrStoppingWakesTheWaiter() async throws {
        let store = InMemoryEventStore()
        try await Self.withHub(store) { hub in
            let id = hub.makeSubscriberID()
            _ = hub.join(id: id, position: .start, filter: .all, baseURL: "", sink: RecordingSink())
            // Whether the waiter is already parked or not, leaving wakes it with where the subscriber stood.
            async let stoppedAt = hub.detached(id: id, joinedAt: .start)
            hub.leave(id: id)
            #expect(await stoppedAt == .start)

            let other = hub.makeSubscriberID()
            _ = hub.join(id: other, position: .start, filter: .all, baseURL: "", sink: RecordingSink())
            hub.stop()
            #expect(await hub.detached(id: other, joinedAt: .start) == .start)
            guard case .behind = hub.join(id: hub.makeSubscriberID(), position: .start, filter: .all, baseURL: "", sink: RecordingSink()) else {
                Issue.record("a stopped hub took a subscriber")
                return
            }
        }
    }
}
