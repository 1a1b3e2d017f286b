import FluxCore
import Foundation
import Logging
import PostgresNIO

/// Consumer groups' state in the store's database (migration `events-v6-consumer-groups`), shared by every node: a
/// row per group in `fluxgate_consumer_groups` (definition, checkpoint, acknowledged ranges after it), a row per parked event in
/// `fluxgate_consumer_group_parked` (deleted with its group), and the rows by which several nodes share a group
/// (`PostgresEventStore+GroupCoordinator.swift`). Each call is one statement, so it is atomic by itself.
extension PostgresEventStore: ConsumerGroupStore {
    public func consumerGroups() async throws -> [ConsumerGroupRecord] {
        try await groupRecords(named: nil)
    }

    public func consumerGroup(named name: String) async throws -> ConsumerGroupRecord? {
        guard EventKey.isPrintable(name) else { return nil }
        return try await groupRecords(named: name).first
    }

    public func createConsumerGroup(_ definition: ConsumerGroupDefinition) async throws -> ConsumerGroupRecord {
        let (logger, filter, policy) = (self.logger, try Self.filterText(definition.filter), definition.policy)
        let (lease, backoff, maximumBackoff) = (policy.leaseTimeout.wholeMilliseconds, policy.backoff.wholeMilliseconds, policy.maximumBackoff.wholeMilliseconds)
        let (name, start, attempts, holds) = (definition.name, definition.start.rawValue, Int64(policy.maximumAttempts), policy.holdsAggregateWhileParked)
        let created = try await reading { connection in
            try await connection.query(
                """
                WITH created AS (
                    INSERT INTO fluxgate_consumer_groups (name, filter, start_position, checkpoint, lease_timeout_ms, maximum_attempts,
                        backoff_ms, maximum_backoff_ms, holds_aggregate)
                    VALUES (\(name), \(filter), \(start), \(start), \(lease), \(attempts), \(backoff), \(maximumBackoff), \(holds))
                    ON CONFLICT (name) DO NOTHING RETURNING name, checkpoint),
                partitions AS (
                    INSERT INTO fluxgate_consumer_group_partitions (group_name, partition, checkpoint)
                    SELECT name, partition, checkpoint FROM created, generate_series(0, \(Self.lastPartition)) AS partition)
                SELECT name FROM created
                """, logger: logger
            ).collect().count
        }
        guard created == 1 else { throw Self.groupExists(definition.name) }
        return ConsumerGroupRecord(definition: definition, checkpoint: definition.start)
    }

    public func updateConsumerGroup(_ definition: ConsumerGroupDefinition) async throws {
        let (logger, filter, policy) = (self.logger, try Self.filterText(definition.filter), definition.policy)
        let (lease, backoff, maximumBackoff) = (policy.leaseTimeout.wholeMilliseconds, policy.backoff.wholeMilliseconds, policy.maximumBackoff.wholeMilliseconds)
        let (name, attempts, holds) = (definition.name, Int64(policy.maximumAttempts), policy.holdsAggregateWhileParked)
        let updated = try await reading { connection in
            try await connection.query(
                """
                UPDATE fluxgate_consumer_groups SET filter = \(filter), lease_timeout_ms = \(lease), maximum_attempts = \(attempts),
                    backoff_ms = \(backoff), maximum_backoff_ms = \(maximumBackoff), holds_aggregate = \(holds),
                    generation = nextval('fluxgate_consumer_group_generations')
                WHERE name = \(name) RETURNING name
                """, logger: logger
            ).collect().count
        }
        guard updated == 1 else { throw Self.unknownGroup(definition.name) }
    }

    public func deleteConsumerGroup(named name: String) async throws -> Bool {
        guard EventKey.isPrintable(name) else { return false }
        let logger = self.logger
        return try await reading { connection in
            try await connection.query("DELETE FROM fluxgate_consumer_groups WHERE name = \(name) RETURNING name", logger: logger).collect().count == 1
        }
    }

    public func saveConsumerGroupCheckpoint(_ position: Position, acknowledged: [ClosedRange<Position>], group name: String, reset: Bool) async throws {
        guard EventKey.isPrintable(name) else { throw Self.unknownGroup(name) }
        let (logger, raw, acknowledged) = (self.logger, position.rawValue, PositionRanges.encode(acknowledged))
        let saved = try await reading { connection in
            try await connection.query(
                """
                WITH saved AS (
                    UPDATE fluxgate_consumer_groups SET checkpoint = \(raw), acknowledged = \(acknowledged),
                        generation = CASE WHEN \(reset) THEN nextval('fluxgate_consumer_group_generations') ELSE generation END
                    WHERE name = \(name) RETURNING name),
                    partitions AS (UPDATE fluxgate_consumer_group_partitions
                        SET checkpoint = CASE WHEN \(reset) THEN \(raw) ELSE GREATEST(checkpoint, \(raw)) END, acknowledged = \(acknowledged)
                        WHERE group_name IN (SELECT name FROM saved)),
                    dropped AS (DELETE FROM fluxgate_consumer_group_parked
                        WHERE \(reset) AND group_name IN (SELECT name FROM saved) AND position > \(raw))
                SELECT name FROM saved
                """, logger: logger
            ).collect().count
        }
        guard saved == 1 else { throw Self.unknownGroup(name) }
    }

    public func parkConsumerGroupEvent(_ parked: ParkedGroupEvent, group name: String) async throws {
        guard EventKey.isPrintable(name) else { throw Self.unknownGroup(name) }
        let logger = self.logger
        let (position, attempts, reason, parkedAt) = (parked.position.rawValue, Int64(parked.attempts), parked.reason, parked.parkedAt)
        let stored = try await reading { connection in
            try await connection.query(
                """
                INSERT INTO fluxgate_consumer_group_parked (group_name, position, attempts, reason, parked_at)
                SELECT name, \(position), \(attempts), \(reason), \(parkedAt) FROM fluxgate_consumer_groups WHERE name = \(name)
                ON CONFLICT (group_name, position) DO UPDATE SET attempts = excluded.attempts, reason = excluded.reason,
                    parked_at = excluded.parked_at
                RETURNING position
                """, logger: logger
            ).collect().count
        }
        guard stored == 1 else { throw Self.unknownGroup(name) }
    }

    public func unparkConsumerGroupEvent(at position: Position, group name: String) async throws -> Bool {
        guard EventKey.isPrintable(name) else { throw Self.unknownGroup(name) }
        let (logger, raw) = (self.logger, position.rawValue)
        let (exists, removed) = try await reading { connection in
            let rows = try await connection.query(
                """
                WITH removed AS (DELETE FROM fluxgate_consumer_group_parked WHERE group_name = \(name) AND position = \(raw) RETURNING 1)
                SELECT EXISTS (SELECT 1 FROM fluxgate_consumer_groups WHERE name = \(name)), (SELECT count(*) FROM removed)
                """, logger: logger
            )
            for try await (exists, removed) in rows.decode((Bool, Int64).self) { return (exists, removed) }
            return (false, Int64(0))
        }
        guard exists else { throw Self.unknownGroup(name) }
        return removed == 1
    }

    // MARK: Rows

    static let lastPartition = Int64(ConsumerGroupPartitions.count - 1)

    private func groupRecords(named name: String?) async throws -> [ConsumerGroupRecord] {
        let logger = self.logger
        let (groups, parked) = try await reading { connection in
            var groups: [(String, String, Int64, Int64, Int64, Int64, Int64, Int64, Bool, String)] = []
            let groupRows = try await connection.query(
                """
                SELECT name, filter, start_position, checkpoint, lease_timeout_ms, maximum_attempts, backoff_ms, maximum_backoff_ms,
                    holds_aggregate, acknowledged FROM fluxgate_consumer_groups WHERE \(name == nil) OR name = \(name ?? "") ORDER BY name COLLATE "C"
                """, logger: logger
            )
            for try await row in groupRows.decode((String, String, Int64, Int64, Int64, Int64, Int64, Int64, Bool, String).self) { groups.append(row) }
            var parked: [String: [ParkedGroupEvent]] = [:]
            let parkedRows = try await connection.query(
                """
                SELECT group_name, position, attempts, reason, parked_at FROM fluxgate_consumer_group_parked
                WHERE \(name == nil) OR group_name = \(name ?? "") ORDER BY group_name, position
                """, logger: logger
            )
            for try await (group, position, attempts, reason, parkedAt) in parkedRows.decode((String, Int64, Int64, String, Int64).self) {
                parked[group, default: []].append(ParkedGroupEvent(position: Position(position), attempts: Int(attempts), reason: reason, parkedAt: parkedAt))
            }
            return (groups, parked)
        }
        return try groups.map { row in
            let (name, filterText, start, checkpoint, lease, attempts, backoff, maximumBackoff, holds, acknowledgedText) = row
            guard let filter = try? JSONDecoder().decode(EventFilter.self, from: Data(filterText.utf8)) else {
                throw StoreError(.corrupted, "consumer group \(name) has a filter that is not JSON: \(filterText.prefix(200))")
            }
            let policy = ConsumerGroupPolicy(
                leaseTimeout: .milliseconds(lease), maximumAttempts: Int(clamping: attempts), backoff: .milliseconds(backoff),
                maximumBackoff: .milliseconds(maximumBackoff), holdsAggregateWhileParked: holds
            )
            let definition: ConsumerGroupDefinition
            do {
                definition = try ConsumerGroupDefinition(name: name, filter: filter, start: Position(start), policy: policy)
            } catch {
                throw StoreError(.corrupted, "consumer group \(name) is stored with a definition this fluxgate refuses: \(error)")
            }
            guard let acknowledged = PositionRanges.decode(acknowledgedText) else {
                throw StoreError(.corrupted, "consumer group \(name) has acknowledged positions that are not ranges: \(acknowledgedText.prefix(200))")
            }
            return ConsumerGroupRecord(
                definition: definition, checkpoint: Position(checkpoint), acknowledged: acknowledged, parked: parked[name] ?? [])
        }
    }

    private static func filterText(_ filter: EventFilter) throws -> String {
        String(decoding: try JSONEncoder().encode(filter), as: UTF8.self)
    }
}
