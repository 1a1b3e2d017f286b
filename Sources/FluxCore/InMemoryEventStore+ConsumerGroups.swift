import Synchronization

extension InMemoryEventStore: ConsumerGroupStore {
    public func consumerGroups() async throws -> [ConsumerGroupRecord] {
        consumerGroupRecords.withLock { $0.values.sorted { $0.definition.name < $1.definition.name } }
    }

    public func consumerGroup(named name: String) async throws -> ConsumerGroupRecord? {
        consumerGroupRecords.withLock { $0[name] }
    }

    public func createConsumerGroup(_ definition: ConsumerGroupDefinition) async throws -> ConsumerGroupRecord {
        try consumerGroupRecords.withLock { (groups: inout [String: ConsumerGroupRecord]) throws(StoreError) -> ConsumerGroupRecord in
            guard groups[definition.name] == nil else { throw Self.groupExists(definition.name) }
            let record = ConsumerGroupRecord(definition: definition, checkpoint: definition.start)
            groups[definition.name] = record
            return record
        }
    }

    public func updateConsumerGroup(_ definition: ConsumerGroupDefinition) async throws {
        try consumerGroupRecords.withLock { (groups: inout [String: ConsumerGroupRecord]) throws(StoreError) in
            guard groups[definition.name] != nil else { throw Self.unknownGroup(definition.name) }
            groups[definition.name]?.definition.filter = definition.filter
            groups[definition.name]?.definition.policy = definition.policy
        }
    }

    public func deleteConsumerGroup(named name: String) async throws -> Bool {
        consumerGroupRecords.withLock { $0.removeValue(forKey: name) != nil }
    }

    public func saveConsumerGroupCheckpoint(_ position: Position, acknowledged: [ClosedRange<Position>], group name: String, reset: Bool) async throws {
        try consumerGroupRecords.withLock { (groups: inout [String: ConsumerGroupRecord]) throws(StoreError) in
            guard var record = groups[name] else { throw Self.unknownGroup(name) }
            record.checkpoint = position
            record.acknowledged = acknowledged
            if reset { record.parked.removeAll { $0.position > position } }
            groups[name] = record
        }
    }

    public func parkConsumerGroupEvent(_ parked: ParkedGroupEvent, group name: String) async throws {
        try consumerGroupRecords.withLock { (groups: inout [String: ConsumerGroupRecord]) throws(StoreError) in
            guard var record = groups[name] else { throw Self.unknownGroup(name) }
            record.parked.removeAll { $0.position == parked.position }
            record.parked.append(parked)
            record.parked.sort { $0.position < $1.position }
            groups[name] = record
        }
    }

    public func unparkConsumerGroupEvent(at position: Position, group name: String) async throws -> Bool {
        try consumerGroupRecords.withLock { (groups: inout [String: ConsumerGroupRecord]) throws(StoreError) -> Bool in
            guard var record = groups[name] else { throw Self.unknownGroup(name) }
            let before = record.parked.count
            record.parked.removeAll { $0.position == position }
            groups[name] = record
            return record.parked.count < before
        }
    }
}
