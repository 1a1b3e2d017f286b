import FluxCore
import Foundation
import GRDB

/// Consumer groups' state in the event store's own file (migrations `events-v2-consumer-groups`, `events-v3-group-acknowledged`):
/// a row per group in `consumer_groups` (definition, checkpoint, acknowledged ranges after it), a row per parked event in `consumer_group_parked`. Writes go through
/// the file's single writer, between the append batches; they are as durable as appends.
extension SQLiteEventStore: ConsumerGroupStore {
    public func consumerGroups() async throws -> [ConsumerGroupRecord] {
        try await groupRead("read the consumer groups") { db in
            try Row.fetchAll(db, sql: "SELECT * FROM consumer_groups ORDER BY name").map { try Self.record($0, db) }
        }
    }

    public func consumerGroup(named name: String) async throws -> ConsumerGroupRecord? {
        try await groupRead("read consumer group \(name)") { db in
            try Row.fetchOne(db, sql: "SELECT * FROM consumer_groups WHERE name = ?", arguments: [name]).map { try Self.record($0, db) }
        }
    }

    public func createConsumerGroup(_ definition: ConsumerGroupDefinition) async throws -> ConsumerGroupRecord {
        let filter = try Self.filterText(definition.filter)
        try await groupWrite("create consumer group \(definition.name)") { db in
            guard try Bool.fetchOne(db, sql: "SELECT 1 FROM consumer_groups WHERE name = ?", arguments: [definition.name]) == nil else {
                throw Self.groupExists(definition.name)
            }
            let policy = definition.policy
            try db.execute(
                sql: """
                    INSERT INTO consumer_groups (name, filter, start_position, checkpoint, lease_timeout_ms, maximum_attempts,
                        backoff_ms, maximum_backoff_ms, holds_aggregate) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    definition.name, filter, definition.start.rawValue, definition.start.rawValue, policy.leaseTimeout.wholeMilliseconds,
                    policy.maximumAttempts, policy.backoff.wholeMilliseconds, policy.maximumBackoff.wholeMilliseconds,
                    policy.holdsAggregateWhileParked,
                ]
            )
        }
        return ConsumerGroupRecord(definition: definition, checkpoint: definition.start)
    }

    public func updateConsumerGroup(_ definition: ConsumerGroupDefinition) async throws {
        let filter = try Self.filterText(definition.filter)
        try await groupWrite("update consumer group \(definition.name)") { db in
            let policy = definition.policy
            try db.execute(
                sql: """
                    UPDATE consumer_groups SET filter = ?, lease_timeout_ms = ?, maximum_attempts = ?, backoff_ms = ?,
                        maximum_backoff_ms = ?, holds_aggregate = ? WHERE name = ?
                    """,
                arguments: [
                    filter, policy.leaseTimeout.wholeMilliseconds, policy.maximumAttempts, policy.backoff.wholeMilliseconds,
                    policy.maximumBackoff.wholeMilliseconds, policy.holdsAggregateWhileParked, definition.name,
                ]
            )
            guard db.changesCount == 1 else { throw Self.unknownGroup(definition.name) }
        }
    }

    public func deleteConsumerGroup(named name: String) async throws -> Bool {
        try await groupWrite("delete consumer group \(name)") { db in
            try db.execute(sql: "DELETE FROM consumer_group_parked WHERE group_name = ?", arguments: [name])
            try db.execute(sql: "DELETE FROM consumer_groups WHERE name = ?", arguments: [name])
            return db.changesCount == 1
        }
    }

    public func saveConsumerGroupCheckpoint(_ position: Position, acknowledged: [ClosedRange<Position>], group name: String, reset: Bool) async throws {
        let acknowledged = PositionRanges.encode(acknowledged)
        try await groupWrite("save the checkpoint of consumer group \(name)") { db in
            try db.execute(
                sql: "UPDATE consumer_groups SET checkpoint = ?, acknowledged = ? WHERE name = ?", arguments: [position.rawValue, acknowledged, name])
            guard db.changesCount == 1 else { throw Self.unknownGroup(name) }
            if reset {
                try db.execute(
                    sql: "DELETE FROM consumer_group_parked WHERE group_name = ? AND position > ?", arguments: [name, position.rawValue])
            }
        }
    }

    public func parkConsumerGroupEvent(_ parked: ParkedGroupEvent, group name: String) async throws {
        try await groupWrite("park an event of consumer group \(name)") { db in
            guard try Bool.fetchOne(db, sql: "SELECT 1 FROM consumer_groups WHERE name = ?", arguments: [name]) != nil else {
                throw Self.unknownGroup(name)
            }
            try db.execute(
                sql: """
                    INSERT INTO consumer_group_parked (group_name, position, attempts, reason, parked_at) VALUES (?, ?, ?, ?, ?)
                    ON CONFLICT (group_name, position) DO UPDATE SET attempts = excluded.attempts, reason = excluded.reason,
                        parked_at = excluded.parked_at
                    """,
                arguments: [name, parked.position.rawValue, parked.attempts, parked.reason, parked.parkedAt]
            )
        }
    }

    public func unparkConsumerGroupEvent(at position: Position, group name: String) async throws -> Bool {
        try await groupWrite("unpark an event of consumer group \(name)") { db in
            guard try Bool.fetchOne(db, sql: "SELECT 1 FROM consumer_groups WHERE name = ?", arguments: [name]) != nil else {
                throw Self.unknownGroup(name)
            }
            try db.execute(
                sql: "DELETE FROM consumer_group_parked WHERE group_name = ? AND position = ?", arguments: [name, position.rawValue])
            return db.changesCount == 1
        }
    }

    // MARK: Rows

    private static func record(_ row: Row, _ db: Database) throws -> ConsumerGroupRecord {
        let name: String = row["name"]
        let filterText: String = row["filter"]
        guard let filter = try? JSONDecoder().decode(EventFilter.self, from: Data(filterText.utf8)) else {
            throw StoreError(.corrupted, "consumer group \(name) has a filter that is not JSON: \(filterText.prefix(200))")
        }
        let policy = ConsumerGroupPolicy(
            leaseTimeout: .milliseconds(row["lease_timeout_ms"] as Int64), maximumAttempts: row["maximum_attempts"],
            backoff: .milliseconds(row["backoff_ms"] as Int64), maximumBackoff: .milliseconds(row["maximum_backoff_ms"] as Int64),
            holdsAggregateWhileParked: row["holds_aggregate"]
        )
        let definition: ConsumerGroupDefinition
        do {
            definition = try ConsumerGroupDefinition(name: name, filter: filter, start: Position(row["start_position"] as Int64), policy: policy)
        } catch {
            throw StoreError(.corrupted, "consumer group \(name) is stored with a definition this fluxgate refuses: \(error)")
        }
        let parked = try Row.fetchAll(
            db, sql: "SELECT position, attempts, reason, parked_at FROM consumer_group_parked WHERE group_name = ? ORDER BY position",
            arguments: [name]
        ).map { ParkedGroupEvent(position: Position($0[0] as Int64), attempts: $0[1], reason: $0[2], parkedAt: $0[3]) }
        let acknowledgedText: String = row["acknowledged"]
        guard let acknowledged = PositionRanges.decode(acknowledgedText) else {
            throw StoreError(.corrupted, "consumer group \(name) has acknowledged positions that are not ranges: \(acknowledgedText.prefix(200))")
        }
        return ConsumerGroupRecord(
            definition: definition, checkpoint: Position(row["checkpoint"] as Int64), acknowledged: acknowledged, parked: parked)
    }

    private static func filterText(_ filter: EventFilter) throws -> String {
        String(decoding: try JSONEncoder().encode(filter), as: UTF8.self)
    }

    private func groupRead<T: Sendable>(_ what: String, _ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        do {
            return try await pool.read(body)
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError(.storeUnavailable, "cannot \(what) at \(path) (\(SQLiteFile.describe(error))); retry later")
        }
    }

    private func groupWrite<T: Sendable>(_ what: String, _ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        do {
            return try await pool.write(body)
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError(.storeUnavailable, "cannot \(what) at \(path) (\(SQLiteFile.describe(error))); retry later")
        }
    }
}
