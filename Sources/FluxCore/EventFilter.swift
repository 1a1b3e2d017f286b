/// Which events a reader wants. Each set that is empty matches everything; a non-empty set matches any of its
/// members; an event must match every set.
public struct EventFilter: Hashable, Sendable {
    public var aggregateNames: Set<String>
    public var eventTypes: Set<String>
    public var aggregateIDs: Set<String>

    public init(aggregateNames: Set<String> = [], eventTypes: Set<String> = [], aggregateIDs: Set<String> = []) {
        self.aggregateNames = aggregateNames
        self.eventTypes = eventTypes
        self.aggregateIDs = aggregateIDs
    }

    /// Matches every event.
    public static let all = EventFilter()

    /// Whether the filter lets every event through.
    public var isEmpty: Bool { aggregateNames.isEmpty && eventTypes.isEmpty && aggregateIDs.isEmpty }

    public func matches(_ event: RecordedEvent) -> Bool {
        (aggregateNames.isEmpty || aggregateNames.contains(event.aggregateName))
            && (eventTypes.isEmpty || eventTypes.contains(event.eventType))
            && (aggregateIDs.isEmpty || aggregateIDs.contains(event.aggregateID))
    }
}
