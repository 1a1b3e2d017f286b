import FluxCore
import Logging
import PostgresNIO

/// The PostgreSQL schema of the event store and the checkpoint store: named, ordered migrations, recorded in
/// `fluxgate_migrations`, applied under an advisory lock so that nodes starting together migrate once.
///
/// Positions are assigned from the single row of `fluxgate_head`, which every appending transaction locks
/// (`SELECT … FOR UPDATE`) and moves forward before it commits (see `PostgresGroupCommitter`).
enum PostgresEventSchema {
    /// The advisory lock key serializing migrations (any constant; "fluxgate" in ASCII).
    static let migrationLock: Int64 = 0x666c_7578_6761_7465

    /// The migrations, in order. Never edit a shipped migration: add a new one.
    static let migrations: [(identifier: String, statements: [String])] = [
        (
            "events-v1",
            [
                """
                CREATE TABLE fluxgate_events (
                    position BIGINT PRIMARY KEY CHECK (position > 0),
                    event_id TEXT NOT NULL UNIQUE,
                    aggregate_id TEXT NOT NULL,
                    aggregate_name TEXT NOT NULL,
                    version BIGINT NOT NULL CHECK (version >= 0),
                    event_type TEXT NOT NULL,
                    recorded_at BIGINT NOT NULL,
                    payload BYTEA NOT NULL,
                    UNIQUE (aggregate_id, version)
                )
                """,
                "CREATE INDEX fluxgate_events_by_event_type ON fluxgate_events (event_type, position)",
                "CREATE INDEX fluxgate_events_by_aggregate_name ON fluxgate_events (aggregate_name, position)",
                "CREATE TABLE fluxgate_head (id INTEGER PRIMARY KEY CHECK (id = 1), position BIGINT NOT NULL CHECK (position >= 0))",
                "INSERT INTO fluxgate_head (id, position) VALUES (1, 0)",
                "CREATE TABLE fluxgate_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
            ]
        ),
        (
            // One call appends a whole batch in its own transaction (a single statement in autocommit): one round
            // trip per batch. Requests are applied in order; each gets an outcome row: 0 stored (first position,
            // version), 1 expected version not met (current version), 2 an event id is already stored (the caller
            // reads those events to tell an idempotent retry from a clash). The head row's lock serializes every
            // appending transaction of every node (see PostgresGroupCommitter).
            "events-v2-append-function",
            [
                """
                CREATE FUNCTION fluxgate_append_v1(
                    aggregate_ids TEXT[], aggregate_names TEXT[], lowest BIGINT[], highest BIGINT[], counts INTEGER[],
                    event_ids TEXT[], event_types TEXT[], payloads BYTEA[], event_requests INTEGER[], event_offsets INTEGER[],
                    recorded BIGINT
                ) RETURNS TABLE (outcome INTEGER, first_position BIGINT, last_version BIGINT)
                LANGUAGE plpgsql AS $$
                DECLARE
                    head BIGINT;
                    start_head BIGINT;
                    skip INTEGER := 0;
                    requests INTEGER := coalesce(array_length(aggregate_ids, 1), 0);
                    stream_ids TEXT[];
                    stream_versions BIGINT[];
                    first_positions BIGINT[] := array_fill(NULL::BIGINT, ARRAY[requests]);
                    first_versions BIGINT[] := array_fill(NULL::BIGINT, ARRAY[requests]);
                    stream INTEGER;
                    current_version BIGINT;
                    n INTEGER;
                    any_stored BOOLEAN;
                BEGIN
                    SELECT h.position INTO head FROM fluxgate_head h WHERE h.id = 1 FOR UPDATE;
                    IF head IS NULL THEN
                        RAISE EXCEPTION 'fluxgate_head has no row';
                    END IF;
                    start_head := head;
                    -- One lookup of event ids for the whole batch; only when one is stored are requests checked one by
                    -- one. (Two requests of one batch sharing a new id make the INSERT fail: the caller then retries
                    -- them one per call, and the second is answered as a retry of the first.)
                    any_stored := EXISTS (SELECT 1 FROM fluxgate_events e WHERE e.event_id = ANY (event_ids));
                    -- One lookup of the current version of every stream of the batch.
                    SELECT array_agg(s.id), array_agg(coalesce(
                               (SELECT e.version FROM fluxgate_events e WHERE e.aggregate_id = s.id ORDER BY e.version DESC LIMIT 1), -1))
                    INTO stream_ids, stream_versions
                    FROM (SELECT DISTINCT unnest(aggregate_ids) AS id) s;
                    -- Decide every request in order, in memory, each seeing the versions left by those before it.
                    FOR r IN 1 .. requests LOOP
                        n := counts[r];
                        stream := array_position(stream_ids, aggregate_ids[r]);
                        current_version := stream_versions[stream];
                        IF any_stored AND EXISTS (SELECT 1 FROM fluxgate_events e WHERE e.event_id = ANY (event_ids[skip + 1 : skip + n])) THEN
                            outcome := 2; first_position := NULL; last_version := NULL;
                        ELSIF current_version < lowest[r] OR current_version > highest[r] THEN
                            outcome := 1; first_position := NULL; last_version := current_version;
                        ELSE
                            first_positions[r] := head + 1;
                            first_versions[r] := current_version + 1;
                            outcome := 0; first_position := head + 1; last_version := current_version + n;
                            head := head + n;
                            stream_versions[stream] := current_version + n;
                        END IF;
                        RETURN NEXT;
                        skip := skip + n;
                    END LOOP;
                    IF head <> start_head THEN
                        -- One INSERT for every event of every accepted request.
                        INSERT INTO fluxgate_events (position, event_id, aggregate_id, aggregate_name, version, event_type, recorded_at, payload)
                        SELECT first_positions[event_requests[k]] + event_offsets[k], event_ids[k], aggregate_ids[event_requests[k]],
                               aggregate_names[event_requests[k]], first_versions[event_requests[k]] + event_offsets[k],
                               event_types[k], recorded, payloads[k]
                        FROM generate_subscripts(event_ids, 1) AS k
                        WHERE first_positions[event_requests[k]] IS NOT NULL;
                        UPDATE fluxgate_head SET position = head WHERE id = 1;
                        PERFORM pg_notify('fluxgate_head', head::text);
                    END IF;
                END
                $$
                """
            ]
        ),
        (
            "checkpoints-v1",
            [
                """
                CREATE TABLE fluxgate_checkpoints (
                    consumer TEXT PRIMARY KEY,
                    position BIGINT NOT NULL CHECK (position >= 0),
                    epoch TEXT NOT NULL,
                    saved_at BIGINT NOT NULL
                )
                """
            ]
        ),
        (
            // Every statement of the append function finds its rows by key, but plpgsql caches a generic plan per
            // connection, planned once from the statistics of the moment: made while the table was small (a new
            // database, before autovacuum's first ANALYZE), it scans the whole table for the batch's event ids and
            // keeps doing so as the table grows (0.5 ms at 800 rows, 16-append batches then took 2× as long).
            // Disabling sequential scans inside the function makes every cached plan use the indexes.
            "events-v3-append-index-plans",
            [
                """
                ALTER FUNCTION fluxgate_append_v1(TEXT[], TEXT[], BIGINT[], BIGINT[], INTEGER[], TEXT[], TEXT[], BYTEA[], INTEGER[], INTEGER[], BIGINT)
                SET enable_seqscan = off
                """
            ]
        ),
        (
            // A stream belongs to one aggregate name for life: a request whose aggregate name is not that of its
            // stream's last event gets outcome 3 (with the stream's current version) and stores nothing, like a
            // conflict, while the other requests of the call go on. The name comes from the lookup that finds the
            // stream's version (its last event's row). The result type stays (CREATE OR REPLACE cannot change it):
            // the caller reads the stored name after the call, as it reads stored events for outcome 2. CREATE OR
            // REPLACE also replaces the function's settings, so events-v3's SET enable_seqscan = off is repeated.
            "events-v4-append-aggregate-name",
            [
                """
                CREATE OR REPLACE FUNCTION fluxgate_append_v1(
                    aggregate_ids TEXT[], aggregate_names TEXT[], lowest BIGINT[], highest BIGINT[], counts INTEGER[],
                    event_ids TEXT[], event_types TEXT[], payloads BYTEA[], event_requests INTEGER[], event_offsets INTEGER[],
                    recorded BIGINT
                ) RETURNS TABLE (outcome INTEGER, first_position BIGINT, last_version BIGINT)
                LANGUAGE plpgsql SET enable_seqscan = off AS $$
                DECLARE
                    head BIGINT;
                    start_head BIGINT;
                    skip INTEGER := 0;
                    requests INTEGER := coalesce(array_length(aggregate_ids, 1), 0);
                    stream_ids TEXT[];
                    stream_versions BIGINT[];
                    stream_names TEXT[];
                    first_positions BIGINT[] := array_fill(NULL::BIGINT, ARRAY[requests]);
                    first_versions BIGINT[] := array_fill(NULL::BIGINT, ARRAY[requests]);
                    stream INTEGER;
                    current_version BIGINT;
                    n INTEGER;
                    any_stored BOOLEAN;
                BEGIN
                    SELECT h.position INTO head FROM fluxgate_head h WHERE h.id = 1 FOR UPDATE;
                    IF head IS NULL THEN
                        RAISE EXCEPTION 'fluxgate_head has no row';
                    END IF;
                    start_head := head;
                    -- One lookup of event ids for the whole batch; only when one is stored are requests checked one by
                    -- one. (Two requests of one batch sharing a new id make the INSERT fail: the caller then retries
                    -- them one per call, and the second is answered as a retry of the first.)
                    any_stored := EXISTS (SELECT 1 FROM fluxgate_events e WHERE e.event_id = ANY (event_ids));
                    -- One lookup of the last event of every stream of the batch: its version and aggregate name.
                    SELECT array_agg(s.id), array_agg(coalesce(tail.version, -1)), array_agg(tail.aggregate_name)
                    INTO stream_ids, stream_versions, stream_names
                    FROM (SELECT DISTINCT unnest(aggregate_ids) AS id) s
                    LEFT JOIN LATERAL (
                        SELECT e.version, e.aggregate_name FROM fluxgate_events e WHERE e.aggregate_id = s.id ORDER BY e.version DESC LIMIT 1
                    ) tail ON true;
                    -- Decide every request in order, in memory, each seeing the streams left by those before it.
                    FOR r IN 1 .. requests LOOP
                        n := counts[r];
                        stream := array_position(stream_ids, aggregate_ids[r]);
                        current_version := stream_versions[stream];
                        IF any_stored AND EXISTS (SELECT 1 FROM fluxgate_events e WHERE e.event_id = ANY (event_ids[skip + 1 : skip + n])) THEN
                            outcome := 2; first_position := NULL; last_version := NULL;
                        ELSIF stream_names[stream] <> aggregate_names[r] THEN  -- NULL for a new stream: no mismatch
                            outcome := 3; first_position := NULL; last_version := current_version;
                        ELSIF current_version < lowest[r] OR current_version > highest[r] THEN
                            outcome := 1; first_position := NULL; last_version := current_version;
                        ELSE
                            first_positions[r] := head + 1;
                            first_versions[r] := current_version + 1;
                            outcome := 0; first_position := head + 1; last_version := current_version + n;
                            head := head + n;
                            stream_versions[stream] := current_version + n;
                            stream_names[stream] := aggregate_names[r];
                        END IF;
                        RETURN NEXT;
                        skip := skip + n;
                    END LOOP;
                    IF head <> start_head THEN
                        -- One INSERT for every event of every accepted request.
                        INSERT INTO fluxgate_events (position, event_id, aggregate_id, aggregate_name, version, event_type, recorded_at, payload)
                        SELECT first_positions[event_requests[k]] + event_offsets[k], event_ids[k], aggregate_ids[event_requests[k]],
                               aggregate_names[event_requests[k]], first_versions[event_requests[k]] + event_offsets[k],
                               event_types[k], recorded, payloads[k]
                        FROM generate_subscripts(event_ids, 1) AS k
                        WHERE first_positions[event_requests[k]] IS NOT NULL;
                        UPDATE fluxgate_head SET position = head WHERE id = 1;
                        PERFORM pg_notify('fluxgate_head', head::text);
                    END IF;
                END
                $$
                """
            ]
        ),
        (
            // The stream listing (EventReader.streams) pages by aggregate id in UTF-8 byte order, as every store does.
            // The (aggregate_id, version) index of the unique constraint sorts by the database's collation, which may
            // be a linguistic one (en_US.UTF-8 ignores punctuation at first: "acc-2" sorts between "acc1" and "acc3",
            // so the ids with a prefix would not be contiguous); this index sorts by bytes ("C"), and the listing's
            // seeks and each stream's last event use it.
            "events-v5-streams-index",
            [
                #"CREATE INDEX fluxgate_events_by_aggregate_id ON fluxgate_events (aggregate_id COLLATE "C", version)"#
            ]
        ),
        (
            // Consumer groups' state beside the events, shared by every node: definitions with their checkpoints,
            // and parked events.
            "events-v6-consumer-groups",
            [
                """
                CREATE TABLE fluxgate_consumer_groups (
                    name TEXT PRIMARY KEY,
                    filter TEXT NOT NULL,
                    start_position BIGINT NOT NULL CHECK (start_position >= 0),
                    checkpoint BIGINT NOT NULL CHECK (checkpoint >= 0),
                    lease_timeout_ms BIGINT NOT NULL,
                    maximum_attempts BIGINT NOT NULL,
                    backoff_ms BIGINT NOT NULL,
                    maximum_backoff_ms BIGINT NOT NULL,
                    holds_aggregate BOOLEAN NOT NULL
                )
                """,
                """
                CREATE TABLE fluxgate_consumer_group_parked (
                    group_name TEXT NOT NULL REFERENCES fluxgate_consumer_groups (name) ON DELETE CASCADE,
                    position BIGINT NOT NULL,
                    attempts BIGINT NOT NULL,
                    reason TEXT NOT NULL,
                    parked_at BIGINT NOT NULL,
                    PRIMARY KEY (group_name, position)
                )
                """,
            ]
        ),
        (
            // Events a group acknowledged after its checkpoint (`5-9,12`), so that a restart does not deliver them again.
            "events-v7-group-acknowledged",
            ["ALTER TABLE fluxgate_consumer_groups ADD COLUMN acknowledged TEXT NOT NULL DEFAULT ''"]
        ),
        (
            // Several nodes share a group (ConsumerGroupCoordinator): a generation that every change, reset or
            // re-creation of a group renews (from a sequence, so a re-created group never repeats one); the group's
            // partitions with their holder, its lease and their progress; and the nodes that have members of it.
            "events-v8-group-partitions",
            [
                "CREATE SEQUENCE fluxgate_consumer_group_generations",
                """
                ALTER TABLE fluxgate_consumer_groups
                    ADD COLUMN generation BIGINT NOT NULL DEFAULT nextval('fluxgate_consumer_group_generations')
                """,
                """
                CREATE TABLE fluxgate_consumer_group_partitions (
                    group_name TEXT NOT NULL REFERENCES fluxgate_consumer_groups (name) ON DELETE CASCADE,
                    partition BIGINT NOT NULL,
                    holder TEXT,
                    lease_until TIMESTAMPTZ,
                    checkpoint BIGINT NOT NULL CHECK (checkpoint >= 0),
                    acknowledged TEXT NOT NULL DEFAULT '',
                    PRIMARY KEY (group_name, partition)
                )
                """,
                """
                INSERT INTO fluxgate_consumer_group_partitions (group_name, partition, checkpoint, acknowledged)
                SELECT name, partition, checkpoint, acknowledged FROM fluxgate_consumer_groups,
                    generate_series(0, \(ConsumerGroupPartitions.count - 1)) AS partition
                """,
                """
                CREATE TABLE fluxgate_consumer_group_nodes (
                    group_name TEXT NOT NULL REFERENCES fluxgate_consumer_groups (name) ON DELETE CASCADE,
                    node TEXT NOT NULL,
                    live_until TIMESTAMPTZ NOT NULL,
                    PRIMARY KEY (group_name, node)
                )
                """,
            ]
        ),
        (
            // Webhook sinks' definitions (JSON: url, filter, secrets, policy) and whether they deliver; each one's
            // checkpoint and parked events are its consumer group's (`sink.<name>`).
            "events-v9-webhook-sinks",
            [
                """
                CREATE TABLE fluxgate_webhook_sinks (
                    name TEXT PRIMARY KEY,
                    definition TEXT NOT NULL,
                    enabled BOOLEAN NOT NULL DEFAULT TRUE,
                    disabled_reason TEXT NOT NULL DEFAULT ''
                )
                """
            ]
        ),
    ]

    /// Brings the database's schema up to date and returns the store's epoch (made by the first migration run).
    ///
    /// - Throws: `StoreError.storeUnavailable` when the database was migrated by a newer fluxgate or a statement fails.
    static func migrate(_ connection: PostgresConnection, location: PostgresLocation, logger: Logger) async throws -> StoreEpoch {
        try await connection.query("BEGIN", logger: logger)
        do {
            try await connection.query("SELECT pg_advisory_xact_lock(\(migrationLock))", logger: logger)
            try await connection.query(
                "CREATE TABLE IF NOT EXISTS fluxgate_migrations (identifier TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
                logger: logger
            )
            var applied = Set<String>()
            for try await identifier in try await connection.query("SELECT identifier FROM fluxgate_migrations", logger: logger)
                .decode(String.self)
            {
                applied.insert(identifier)
            }
            let unknown = applied.subtracting(migrations.map(\.identifier))
            if !unknown.isEmpty {
                throw StoreError(
                    .storeUnavailable,
                    "the database \(location) has schema migrations this fluxgate does not know (\(unknown.sorted().joined(separator: ", "))); it was migrated by a newer version: upgrade fluxgate"
                )
            }
            for migration in migrations where !applied.contains(migration.identifier) {
                for statement in migration.statements {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await connection.query("INSERT INTO fluxgate_migrations (identifier) VALUES (\(migration.identifier))", logger: logger)
                logger.info("applied a schema migration", metadata: ["migration": "\(migration.identifier)", "database": "\(location)"])
            }
            let fresh = StoreEpoch.random().rawValue
            try await connection.query(
                "INSERT INTO fluxgate_meta (key, value) VALUES ('epoch', \(fresh)) ON CONFLICT (key) DO NOTHING", logger: logger
            )
            var epoch: String?
            for try await value in try await connection.query("SELECT value FROM fluxgate_meta WHERE key = 'epoch'", logger: logger)
                .decode(String.self)
            {
                epoch = value
            }
            try await connection.query("COMMIT", logger: logger)
            guard let epoch else {
                throw StoreError(.corrupted, "the database \(location) has no epoch in fluxgate_meta; restore it from a backup")
            }
            return StoreEpoch(rawValue: epoch)
        } catch {
            _ = try? await connection.query("ROLLBACK", logger: logger)
            if let error = error as? StoreError { throw error }
            throw StoreError(
                .storeUnavailable,
                "cannot prepare the event store in \(location) (\(PostgresErrors.describe(error))); check that the user may create tables there"
            )
        }
    }
}
