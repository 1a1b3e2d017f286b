import FluxCore
import Foundation
import GRDB

/// Webhook sinks' definitions in the event store's own file (migration `events-v4-webhook-sinks`): a row per sink in
/// `webhook_sinks`, its definition as JSON. Its checkpoint and parked events are its consumer group's.
extension SQLiteEventStore: WebhookSinkStore {
    public func webhookSinks() async throws -> [WebhookSinkRecord] {
        try await sinkAccess("read the webhook sinks", write: false) { db in
            try Row.fetchAll(db, sql: "SELECT * FROM webhook_sinks ORDER BY name").map(Self.sinkRecord)
        }
    }

    public func webhookSink(named name: String) async throws -> WebhookSinkRecord? {
        try await sinkAccess("read webhook sink \(name)", write: false) { db in
            try Row.fetchOne(db, sql: "SELECT * FROM webhook_sinks WHERE name = ?", arguments: [name]).map(Self.sinkRecord)
        }
    }

    public func putWebhookSink(_ definition: WebhookSinkDefinition) async throws -> Bool {
        let text = String(decoding: try JSONEncoder().encode(definition), as: UTF8.self)
        return try await sinkAccess("store webhook sink \(definition.name)", write: true) { db in
            let existed = try Bool.fetchOne(db, sql: "SELECT 1 FROM webhook_sinks WHERE name = ?", arguments: [definition.name]) != nil
            try db.execute(
                sql: """
                    INSERT INTO webhook_sinks (name, definition, enabled, disabled_reason) VALUES (?, ?, 1, '')
                    ON CONFLICT (name) DO UPDATE SET definition = excluded.definition, enabled = 1, disabled_reason = ''
                    """,
                arguments: [definition.name, text])
            return !existed
        }
    }

    public func replaceWebhookSinkDefinition(_ definition: WebhookSinkDefinition, ifStoredAs expected: WebhookSinkDefinition) async throws -> Bool {
        guard definition.name == expected.name else { return false }
        let text = String(decoding: try JSONEncoder().encode(definition), as: UTF8.self)
        return try await sinkAccess("store webhook sink \(definition.name)", write: true) { db in
            // (One write transaction: nothing changes the row between the read and the update.)
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM webhook_sinks WHERE name = ?", arguments: [expected.name]),
                try Self.sinkRecord(row).definition == expected
            else { return false }
            try db.execute(sql: "UPDATE webhook_sinks SET definition = ? WHERE name = ?", arguments: [text, expected.name])
            return true
        }
    }

    public func disableWebhookSink(named name: String, reason: String) async throws {
        try await sinkAccess("disable webhook sink \(name)", write: true) { db in
            try db.execute(sql: "UPDATE webhook_sinks SET enabled = 0, disabled_reason = ? WHERE name = ?", arguments: [reason, name])
            guard db.changesCount == 1 else { throw Self.unknownSink(name) }
        }
    }

    public func deleteWebhookSink(named name: String) async throws -> Bool {
        try await sinkAccess("delete webhook sink \(name)", write: true) { db in
            try db.execute(sql: "DELETE FROM webhook_sinks WHERE name = ?", arguments: [name])
            return db.changesCount == 1
        }
    }

    private static func sinkRecord(_ row: Row) throws -> WebhookSinkRecord {
        let name: String = row["name"]
        let text: String = row["definition"]
        guard let definition = try? JSONDecoder().decode(WebhookSinkDefinition.self, from: Data(text.utf8)) else {
            throw StoreError(.corrupted, "webhook sink \(name) has a definition this fluxgate cannot read")
        }
        return WebhookSinkRecord(definition: definition, enabled: row["enabled"], disabledReason: row["disabled_reason"])
    }

    private func sinkAccess<T: Sendable>(_ what: String, write: Bool, _ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        do {
            return write ? try await pool.write(body) : try await pool.read(body)
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError(.storeUnavailable, "cannot \(what) at \(path) (\(SQLiteFile.describe(error))); retry later")
        }
    }
}
