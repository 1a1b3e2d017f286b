/// Loads and saves aggregates of one kind through an event store, with optimistic concurrency.
public struct Repository<State: Aggregate>: Sendable {
    private let store: any EventStore
    private let registry: EventTypeRegistry
    private let pageSize = 1000

    public init(store: any EventStore) {
        self.store = store
        self.registry = EventTypeRegistry(State.eventTypes)
    }

    /// Loads an aggregate by replaying its stream; an aggregate with no events comes back new (version `-1`).
    public func load(_ id: String) async throws -> EventSourced<State> {
        var events: [any DomainEvent] = []
        var version: Int64 = -1
        while true {
            let page = try await store.readStream(id, fromVersion: version + 1, limit: pageSize)
            for recorded in page {
                events.append(try registry.decode(recorded))
                version = recorded.version
            }
            if page.count < pageSize { break }
        }
        return EventSourced(id: id, replaying: events, version: version)
    }

    /// Saves the pending events with the version the aggregate was loaded at.
    ///
    /// Returns `nil` when nothing is pending (a no-op). Throws `StoreError.conflict` when someone else saved
    /// the aggregate in between: nothing was stored; reload and retry (or use `update`).
    @discardableResult
    public func save(_ aggregate: inout EventSourced<State>) async throws -> AppendResult? {
        guard !aggregate.pendingEvents.isEmpty else { return nil }
        var events: [NewEvent] = []
        events.reserveCapacity(aggregate.pendingEvents.count)
        for event in aggregate.pendingEvents {
            events.append(NewEvent(eventType: type(of: event).eventType, payload: try EventPayload(encoding: event)))
        }
        let result = try await store.append(
            AppendRequest(
                aggregateID: aggregate.id, aggregateName: State.aggregateName,
                expectedVersion: aggregate.expectedVersion, events: events
            )
        )
        aggregate.markSaved(version: result.version)
        return result
    }

    /// Loads the aggregate, runs the command, saves; on a conflict reloads and runs it again, up to
    /// `maxAttempts` times. Returns the saved aggregate.
    @discardableResult
    public func update(
        _ id: String, maxAttempts: Int = 5, _ command: (State) throws -> [any DomainEvent]
    ) async throws -> EventSourced<State> {
        var attempt = 1
        while true {
            var aggregate = try await load(id)
            try aggregate.execute(command)
            do {
                try await save(&aggregate)
                return aggregate
            } catch StoreError.conflict where attempt < maxAttempts {
                attempt += 1
            }
        }
    }
}
