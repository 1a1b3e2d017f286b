/// A typed domain event.
///
/// Each event type has a stable name stored with it. The default is the Swift type name; set it explicitly
/// (e.g. `account.AccountCredited`) so that consumers in other languages — such as Go consumers of the
/// original flux feed — can decode it, and so that renaming the Swift type does not orphan stored events.
public protocol DomainEvent: Codable, Sendable {
    /// The stable type name written to the store as `event_type`.
    static var eventType: String { get }
}

extension DomainEvent {
    public static var eventType: String { String(describing: Self.self) }
}

/// Turns stored events into typed events, by `event_type`.
public struct EventTypeRegistry: Sendable {
    private let decoders: [String: @Sendable (EventPayload) throws -> any DomainEvent]

    /// A registry of the given event types. Two types with the same name are a programming error.
    public init(_ types: [any DomainEvent.Type]) {
        var decoders: [String: @Sendable (EventPayload) throws -> any DomainEvent] = [:]
        for type in types {
            precondition(decoders[type.eventType] == nil, "two event types are named \(type.eventType)")
            decoders[type.eventType] = { payload in try Self.decode(type, payload) }
        }
        self.decoders = decoders
    }

    private static func decode<E: DomainEvent>(_ type: E.Type, _ payload: EventPayload) throws -> any DomainEvent {
        try payload.decode(E.self)
    }

    /// The event type names this registry knows.
    public var eventTypes: Set<String> { Set(decoders.keys) }

    /// Decodes a stored event; throws `EventDecodingError` for an unknown type or a payload that does not fit.
    public func decode(_ event: RecordedEvent) throws -> any DomainEvent {
        guard let decoder = decoders[event.eventType] else {
            throw EventDecodingError(
                eventType: event.eventType, position: event.position,
                reason: "no event type with this name is registered; add it to the aggregate's eventTypes"
            )
        }
        do {
            return try decoder(event.payload)
        } catch {
            throw EventDecodingError(eventType: event.eventType, position: event.position, reason: "the payload does not decode: \(error)")
        }
    }
}

/// A stored event could not be turned into a typed event.
public struct EventDecodingError: Error, Sendable, CustomStringConvertible {
    public var eventType: String
    public var position: Position
    public var reason: String

    public var description: String { "cannot decode event \(eventType) at position \(position): \(reason)" }
}
