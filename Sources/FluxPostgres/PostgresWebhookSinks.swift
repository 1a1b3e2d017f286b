import FluxCore
import Foundation
import Logging
import PostgresNIO

/// Webhook sinks' definitions in the store's database (migration `events-v9-webhook-sinks`), shared by every node: a
/// row per sink in `fluxgate_webhook_sinks`, its definition as JSON. Its checkpoint and parked events are its consumer
/// group's.
extension PostgresEventStore: WebhookSinkStore {
    public func webhookSinks() async throws -> [WebhookSinkRecord] {
        try await sinkRecords(named: nil)
    }

    public func webhookSink(named name: String) async throws -> WebhookSinkRecord? {
        guard EventKey.isPrintable(name) else { return nil }
        return try await sinkRecords(named: name).first
    }

    public func putWebhookSink(_ definition: WebhookSinkDefinition) async throws -> Bool {
        let (logger, name) = (self.logger, definition.name)
        let text = String(decoding: try JSONEncoder().encode(definition), as: UTF8.self)
        return try await reading { connection in
            // xmax = 0: the row was inserted, not updated.
            let rows = try await connection.query(
                """
                INSERT INTO fluxgate_webhook_sinks (name, definition, enabled, disabled_reason) VALUES (\(name), \(text), TRUE, '')
                ON CONFLICT (name) DO UPDATE SET definition = excluded.definition, enabled = TRUE, disabled_reason = ''
                RETURNING (xmax = 0)
                """, logger: logger)
            var created = false
            for try await inserted in rows.decode(Bool.self) { created = inserted }
            return created
        }
    }

    public func replaceWebhookSinkDefinition(_ definition: WebhookSinkDefinition, ifStoredAs expected: WebhookSinkDefinition) async throws -> Bool {
        guard definition.name == expected.name, EventKey.isPrintable(expected.name) else { return false }
        let (logger, name) = (self.logger, expected.name)
        let text = String(decoding: try JSONEncoder().encode(definition), as: UTF8.self)
        return try await reading { connection in
            try await connection.withTransaction(logger: logger) { connection in
                // The row locked from the read to the update: a PUT or a 410 from another node waits, then applies to it.
                let rows = try await connection.query(
                    "SELECT definition FROM fluxgate_webhook_sinks WHERE name = \(name) FOR UPDATE", logger: logger)
                var stored: String?
                for try await row in rows.decode(String.self) { stored = row }
                guard let stored, try Self.sinkDefinition(name, stored) == expected else { return false }
                try await connection.query("UPDATE fluxgate_webhook_sinks SET definition = \(text) WHERE name = \(name)", logger: logger)
                return true
            }
        }
    }

    public func disableWebhookSink(named name: String, reason: String) async throws {
        let logger = self.logger
        let updated = try await reading { connection in
            // The sink's group gets a new generation: the node that would take its partitions next sees the change
            // before it could deliver, and its deliverer reads the sink again and stops.
            try await connection.query(
                """
                WITH disabled AS (UPDATE fluxgate_webhook_sinks SET enabled = FALSE, disabled_reason = \(reason) WHERE name = \(name) RETURNING name),
                    renewed AS (UPDATE fluxgate_consumer_groups SET generation = nextval('fluxgate_consumer_group_generations')
                        WHERE name = \(WebhookSinkDefinition.groupPrefix + name) AND EXISTS (SELECT 1 FROM disabled))
                SELECT name FROM disabled
                """, logger: logger
            ).collect().count
        }
        guard updated == 1 else { throw Self.unknownSink(name) }
    }

    public func deleteWebhookSink(named name: String) async throws -> Bool {
        guard EventKey.isPrintable(name) else { return false }
        let logger = self.logger
        return try await reading { connection in
            try await connection.query("DELETE FROM fluxgate_webhook_sinks WHERE name = \(name) RETURNING name", logger: logger).collect().count == 1
        }
    }

    private func sinkRecords(named name: String?) async throws -> [WebhookSinkRecord] {
        let logger = self.logger
        let rows = try await reading { connection in
            var rows: [(String, String, Bool, String)] = []
            let result = try await connection.query(
                """
                SELECT name, definition, enabled, disabled_reason FROM fluxgate_webhook_sinks
                WHERE \(name == nil) OR name = \(name ?? "") ORDER BY name COLLATE "C"
                """, logger: logger)
            for try await row in result.decode((String, String, Bool, String).self) { rows.append(row) }
            return rows
        }
        return try rows.map { name, text, enabled, reason in
            WebhookSinkRecord(definition: try Self.sinkDefinition(name, text), enabled: enabled, disabledReason: reason)
        }
    }

    /// A stored definition's JSON read back.
    private static func sinkDefinition(_ name: String, _ text: String) throws -> WebhookSinkDefinition {
        guard let definition = try? JSONDecoder().decode(WebhookSinkDefinition.self, from: Data(text.utf8)) else {
            throw StoreError(.corrupted, "webhook sink \(name) has a definition this fluxgate cannot read")
        }
        return definition
    }
}
