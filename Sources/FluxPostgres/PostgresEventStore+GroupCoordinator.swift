import FluxCore
import Logging
import PostgresNIO

/// Several nodes share a consumer group through two tables (migration `events-v8-group-partitions`):
/// `fluxgate_consumer_group_nodes`, a row per node that has members of the group, live until its heartbeat's lease
/// ends; and `fluxgate_consumer_group_partitions`, a row per partition with its holder, the holder's lease and the
/// partition's progress. Leases are on the database's clock, so nodes' clocks need not agree. Two nodes that take
/// the same free partition at once both run the same conditional `UPDATE`; the row lock makes the second see the
/// first's holder and take nothing. A group served by one node at a time (``ConsumerGroupSharing/oneNode``) beats
/// under a transaction-scoped advisory lock on its name, so that the holders each node sees are the latest.
extension PostgresEventStore: ConsumerGroupCoordinator {
    public func coordinateConsumerGroup(
        _ name: String, node: String, serving: Bool, sharing: ConsumerGroupSharing, lease: Duration
    ) async throws -> ConsumerGroupAssignment {
        guard EventKey.isPrintable(name) else { throw Self.unknownGroup(name) }
        let (logger, seconds) = (self.logger, Double(lease.wholeMilliseconds) / 1000)
        let beat = { @Sendable (connection: PostgresConnection) async throws -> (Int64, Set<Int>, [String], [(Int64, Int64, String)])? in
            var group: (Int64, [String])?
            let rows = try await connection.query(
                """
                WITH grp AS (SELECT name, generation FROM fluxgate_consumer_groups WHERE name = \(name)),
                    upserted AS (INSERT INTO fluxgate_consumer_group_nodes (group_name, node, live_until)
                        SELECT name, \(node), now() + make_interval(secs => \(seconds)) FROM grp WHERE \(serving)
                        ON CONFLICT (group_name, node) DO UPDATE SET live_until = excluded.live_until),
                    removed AS (DELETE FROM fluxgate_consumer_group_nodes WHERE group_name = \(name)
                        AND ((node = \(node) AND NOT \(serving)) OR live_until < now() - interval '1 hour'))
                SELECT generation, COALESCE((SELECT array_agg(node) FROM fluxgate_consumer_group_nodes
                    WHERE group_name = \(name) AND node <> \(node) AND live_until > now()), '{}') FROM grp
                """, logger: logger)
            for try await (generation, others) in rows.decode((Int64, [String]).self) { group = (generation, others) }
            guard let (generation, others) = group else { return nil }
            let live = serving ? others + [node] : others
            var holders: [String] = []
            if sharing == .oneNode {
                let rows = try await connection.query(
                    """
                    SELECT DISTINCT holder FROM fluxgate_consumer_group_partitions
                    WHERE group_name = \(name) AND holder IS NOT NULL AND lease_until > now()
                    """, logger: logger)
                for try await holder in rows.decode(String.self) { holders.append(holder) }
            }
            let share = ConsumerGroupPartitions.share(of: node, among: live, holding: holders, sharing: sharing)
            var held: [(Int64, Int64, String)] = []
            let claimed = try await connection.query(
                """
                UPDATE fluxgate_consumer_group_partitions SET holder = \(node), lease_until = now() + make_interval(secs => \(seconds))
                WHERE group_name = \(name) AND (holder = \(node) OR (partition = ANY(\(share.map { Int64($0) })) AND (holder IS NULL OR lease_until <= now())))
                RETURNING partition, checkpoint, acknowledged
                """, logger: logger)
            for try await row in claimed.decode((Int64, Int64, String).self) { held.append(row) }
            return (generation, share, live, held)
        }
        let found = try await reading { connection in
            switch sharing {
            case .partitioned:
                return try await beat(connection)
            case .oneNode:
                // The nodes' heartbeats for the group take turns, so that two nodes starting at once do not each
                // take some of the partitions: the second sees the first's holder.
                return try await connection.withTransaction(logger: logger) { connection in
                    try await connection.query(
                        "SELECT pg_advisory_xact_lock(hashtextextended(\("fluxgate.consumer-group." + name), 0))", logger: logger)
                    return try await beat(connection)
                }
            }
        }
        guard let (generation, share, live, heldRows) = found else { throw Self.unknownGroup(name) }
        var held: [Int: ConsumerGroupPartitionProgress] = [:]
        for (partition, checkpoint, acknowledgedText) in heldRows {
            guard let acknowledged = PositionRanges.decode(acknowledgedText) else {
                throw StoreError(.corrupted, "consumer group \(name)'s partition \(partition) has acknowledged positions that are not ranges: \(acknowledgedText.prefix(200))")
            }
            held[Int(partition)] = ConsumerGroupPartitionProgress(checkpoint: Position(checkpoint), acknowledged: acknowledged)
        }
        return ConsumerGroupAssignment(generation: generation, held: held, share: share, liveNodes: live.count)
    }

    public func saveConsumerGroupPartitions(
        _ partitions: Set<Int>, checkpoint: Position, acknowledged: [ClosedRange<Position>], group name: String, node: String, generation: Int64
    ) async throws -> Bool {
        guard EventKey.isPrintable(name) else { throw Self.unknownGroup(name) }
        guard !partitions.isEmpty else { return true }
        let (logger, raw, ranges, list) = (self.logger, checkpoint.rawValue, PositionRanges.encode(acknowledged), partitions.map { Int64($0) })
        let saved = try await reading { connection -> Int64 in
            var count: Int64 = 0
            let rows = try await connection.query(
                """
                WITH saved AS (
                    UPDATE fluxgate_consumer_group_partitions AS p SET checkpoint = GREATEST(p.checkpoint, \(raw)), acknowledged = \(ranges)
                    FROM fluxgate_consumer_groups AS g
                    WHERE g.name = \(name) AND g.generation = \(generation) AND p.group_name = g.name AND p.holder = \(node)
                        AND p.partition = ANY(\(list))
                    RETURNING p.partition)
                SELECT count(*) FROM saved
                """, logger: logger)
            for try await value in rows.decode(Int64.self) { count = value }
            guard count == list.count else { return count }
            // The group's checkpoint (what GET /groups shows, and its lag) is the lowest of its partitions'.
            try await connection.query(
                """
                UPDATE fluxgate_consumer_groups SET checkpoint = GREATEST(checkpoint,
                    (SELECT min(checkpoint) FROM fluxgate_consumer_group_partitions WHERE group_name = \(name)))
                WHERE name = \(name) AND generation = \(generation)
                """, logger: logger)
            return count
        }
        return saved == Int64(list.count)
    }

    public func releaseConsumerGroupPartitions(_ partitions: Set<Int>, group name: String, node: String) async throws {
        guard EventKey.isPrintable(name), !partitions.isEmpty else { return }
        let (logger, list) = (self.logger, partitions.map { Int64($0) })
        try await reading { connection in
            try await connection.query(
                """
                UPDATE fluxgate_consumer_group_partitions SET holder = NULL, lease_until = NULL
                WHERE group_name = \(name) AND holder = \(node) AND partition = ANY(\(list))
                """, logger: logger)
        }
    }
}
