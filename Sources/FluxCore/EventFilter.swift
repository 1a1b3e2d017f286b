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

    /// The filter without the values no stored event can have (ids and names holding a control character, see
    /// `EventKey`), for stores that would match such a value against other text (SQLite cuts text at a NUL); `nil`
    /// when a set held only such values, so that the filter matches nothing. The filter itself when every value is
    /// printable.
    public var printableValues: EventFilter? {
        func printable(_ values: Set<String>) -> Set<String>? {
            if values.allSatisfy(EventKey.isPrintable) { return values }
            let kept = values.filter(EventKey.isPrintable)
            return kept.isEmpty ? nil : kept
        }
        guard let names = printable(aggregateNames), let types = printable(eventTypes), let ids = printable(aggregateIDs) else {
            return nil
        }
        return EventFilter(aggregateNames: names, eventTypes: types, aggregateIDs: ids)
    }

    public func matches(_ event: RecordedEvent) -> Bool {
        (aggregateNames.isEmpty || aggregateNames.contains(event.aggregateName))
            && (eventTypes.isEmpty || eventTypes.contains(event.eventType))
            && (aggregateIDs.isEmpty || aggregateIDs.contains(event.aggregateID))
    }
}
