import FluxCore
import FluxWire
import Synchronization
import Testing

@testable import FluxGateway

/// The driver's rules, without sockets: catch-up from the store page by page, `caught_up` once, then the hub's live
/// tail, and back to the store from where delivery stopped when the subscriber falls behind.
@Suite struct SubscriptionDriverTests {
    /// What the driver sent through the transport it was given (catch-up pages and `caught_up`).
    final class RecordingTransport: Sendable {
        private let state = Mutex<(pages: [[Int64]], caughtUp: [Int64])>(([], []))
        let sink = SubscriptionHubTests.RecordingSink()

        var pages: [[Int64]] { state.withLock { $0.pages } }
        var caughtUp: [Int64] { state.withLock { $0.caughtUp } }
        /// Every position sent, from the store or the hub, in order of sending per path.
        var storePositions: [Int64] { pages.flatMap { $0 } }

        var transport: SubscriptionDriver.Transport {
            SubscriptionDriver.Transport(
                sendPage: { [self] page, _ in record(page: page.map(\.position.rawValue)) },
                sendCaughtUp: { [self] head in record(caughtUp: head.rawValue) },
                sink: sink
            )
        }

        private func record(page: [Int64]) { state.withLock { $0.pages.append(page) } }
        private func record(caughtUp head: Int64) { state.withLock { $0.caughtUp.append(head) } }
    }

    static func driver(_ store: InMemoryEventStore, _ hub: SubscriptionHub, pageSize: Int = 10, filter: EventFilter = .all) -> SubscriptionDriver {
        SubscriptionDriver(store: store, hub: hub, filter: filter, baseURL: "http://test", pageSize: pageSize, pages: PageSizer(byteBudget: 1 << 20))
    }

    /// Runs the driver in a task for `body`, then cancels it and waits for its end.
    static func running(_ driver: SubscriptionDriver, after start: Position, _ transport: RecordingTransport, _ body: () async throws -> Void) async throws {
        let run = Task { try await driver.run(after: start, transport: transport.transport) }
        do {
            try await body()
        } catch {
            run.cancel()
            _ = try? await run.value
            throw error
        }
        run.cancel()
        _ = try? await run.value
    }

    @Test func theBacklogComesInPagesThenCaughtUpOnceThenLiveEvents() async throws {
        let store = InMemoryEventStore()
        try await SubscriptionHubTests.append(store, 25)
        try await SubscriptionHubTests.withHub(store) { hub in
            let recorded = RecordingTransport()
            try await Self.running(Self.driver(store, hub), after: Position(3), recorded) {
                try await SubscriptionHubTests.waitUntil { recorded.caughtUp.count == 1 && hub.liveCount == 1 }
                #expect(recorded.pages.allSatisfy { $0.count <= 10 }, "pages of at most the page size: \(recorded.pages)")
                #expect(recorded.storePositions == Array(4...25), "the backlog after 3, once, in order")
                #expect(recorded.caughtUp == [25])
                try await SubscriptionHubTests.append(store, 5)
                try await SubscriptionHubTests.waitUntil { recorded.sink.positions.count == 5 }
                #expect(recorded.sink.positions == Array(26...30), "live events come through the hub")
                #expect(recorded.storePositions == Array(4...25), "not from the store again")
            }
        }
    }

    @Test func aSubscriberThatFallsBehindCatchesUpFromTheStoreWithoutGapOrDuplicate() async throws {
        let store = InMemoryEventStore()
        try await SubscriptionHubTests.append(store, 5)
        try await SubscriptionHubTests.withHub(store) { hub in
            let recorded = RecordingTransport()
            try await Self.running(Self.driver(store, hub), after: .start, recorded) {
                try await SubscriptionHubTests.waitUntil { hub.liveCount == 1 }
                try await SubscriptionHubTests.append(store, 3)
                try await SubscriptionHubTests.waitUntil { recorded.sink.positions.count == 3 }
                // Its socket is full: the hub's next offer is refused and it goes back to the store.
                recorded.sink.refuse()
                try await SubscriptionHubTests.append(store, 12)
                try await SubscriptionHubTests.waitUntil { recorded.storePositions.last == 20 }
                #expect(hub.fellBehindCount >= 1)
                let delivered = recorded.storePositions.filter { $0 > 5 } + recorded.sink.positions
                #expect(delivered.sorted() == Array(6...20), "every event after the backlog once: \(delivered)")
                #expect(Set(delivered).count == delivered.count, "no event twice")
                #expect(recorded.caughtUp == [5], "caught_up only after the first catch-up")
            }
        }
    }

    @Test func theFilterAppliesToTheBacklog() async throws {
        let store = InMemoryEventStore()
        try await SubscriptionHubTests.append(store, 4, stream: "a")
        try await SubscriptionHubTests.append(store, 4, stream: "b")
        try await SubscriptionHubTests.withHub(store) { hub in
            let recorded = RecordingTransport()
            let driver = Self.driver(store, hub, filter: EventFilter(aggregateIDs: ["b"]))
            try await Self.running(driver, after: .start, recorded) {
                try await SubscriptionHubTests.waitUntil { recorded.caughtUp.count == 1 }
                #expect(recorded.storePositions == Array(5...8))
                #expect(recorded.caughtUp == [8])
            }
        }
    }
}
