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

extension EventFilter: Codable {
    private enum CodingKeys: String, CodingKey {
        case aggregateNames = "aggregate_names", eventTypes = "event_types", aggregateIDs = "aggregate_ids"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            aggregateNames: try container.decodeIfPresent(Set<String>.self, forKey: .aggregateNames) ?? [],
            eventTypes: try container.decodeIfPresent(Set<String>.self, forKey: .eventTypes) ?? [],
            aggregateIDs: try container.decodeIfPresent(Set<String>.self, forKey: .aggregateIDs) ?? []
        )
    }

    /// Sorted arrays, so that the same filter is always the same text.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(aggregateNames.sorted(), forKey: .aggregateNames)
        try container.encode(eventTypes.sorted(), forKey: .eventTypes)
        try container.encode(aggregateIDs.sorted(), forKey: .aggregateIDs)
    }
}
