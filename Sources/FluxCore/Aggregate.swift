/// An event-sourced aggregate: its state is rebuilt by applying its past events in order.
///
/// Commands are ordinary methods that decide, from the current state, which events to record; they never
/// change the state themselves. `apply(_:)` is the only place where state changes.
///
/// ```swift
/// struct Account: Aggregate {
///     static let aggregateName = "Account"
///     static let eventTypes: [any DomainEvent.Type] = [AccountCreated.self, AccountCredited.self]
///     let id: String
///     var balance = 0
///     init(id: String) { self.id = id }
///     mutating func apply(_ event: any DomainEvent) {
///         if let credited = event as? AccountCredited { balance += credited.amount }
///     }
///     func credit(_ amount: Int) throws -> [any DomainEvent] { [AccountCredited(amount: amount)] }
/// }
/// ```
public protocol Aggregate: Sendable {
    /// The name stored as `aggregate_name` for every event of this kind of aggregate.
    static var aggregateName: String { get }
    /// Every event type this aggregate records, for decoding its stream.
    static var eventTypes: [any DomainEvent.Type] { get }
    /// The aggregate's id (its stream id).
    var id: String { get }
    /// A new aggregate with no events.
    init(id: String)
    /// Evolves the state by one event.
    mutating func apply(_ event: any DomainEvent)
}

/// An aggregate with its stored version and the events recorded since it was loaded.
public struct EventSourced<State: Aggregate>: Sendable {
    /// The current state, including pending events.
    public private(set) var state: State
    /// The version of the last stored event (`-1` when none is stored).
    public private(set) var version: Int64
    /// Events recorded but not yet saved.
    public private(set) var pendingEvents: [any DomainEvent] = []

    /// A new aggregate with no stored events.
    public init(id: String) {
        self.state = State(id: id)
        self.version = -1
    }

    /// Rebuilds an aggregate from its stored events, in version order.
    public init(id: String, replaying events: [any DomainEvent], version: Int64) {
        var state = State(id: id)
        for event in events { state.apply(event) }
        self.state = state
        self.version = version
    }

    public var id: String { state.id }

    /// The version the store should hold before pending events are saved.
    public var expectedVersion: ExpectedVersion { version == -1 ? .noStream : .exact(version) }

    /// Records one event: applies it to the state and keeps it for the next save.
    public mutating func record(_ event: some DomainEvent) {
        state.apply(event)
        pendingEvents.append(event)
    }

    /// Runs a command against the current state and records the events it decides.
    @discardableResult
    public mutating func execute(_ command: (State) throws -> [any DomainEvent]) rethrows -> [any DomainEvent] {
        let events = try command(state)
        for event in events {
            state.apply(event)
            pendingEvents.append(event)
        }
        return events
    }

    /// Marks the pending events as stored (the repository calls this after a successful save).
    mutating func markSaved(version: Int64) {
        self.version = version
        pendingEvents.removeAll()
    }
}
