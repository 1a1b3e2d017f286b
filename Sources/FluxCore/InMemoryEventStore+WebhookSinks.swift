import Synchronization

extension InMemoryEventStore: WebhookSinkStore {
    public func webhookSinks() async throws -> [WebhookSinkRecord] {
        webhookSinkRecords.withLock { $0.values.sorted { $0.definition.name < $1.definition.name } }
    }

    public func webhookSink(named name: String) async throws -> WebhookSinkRecord? {
        webhookSinkRecords.withLock { $0[name] }
    }

    public func putWebhookSink(_ definition: WebhookSinkDefinition) async throws -> Bool {
        webhookSinkRecords.withLock { sinks in
            defer { sinks[definition.name] = WebhookSinkRecord(definition: definition) }
            return sinks[definition.name] == nil
        }
    }

    public func replaceWebhookSinkDefinition(_ definition: WebhookSinkDefinition, ifStoredAs expected: WebhookSinkDefinition) async throws -> Bool {
        webhookSinkRecords.withLock { sinks in
            guard definition.name == expected.name, sinks[expected.name]?.definition == expected else { return false }
            sinks[expected.name]?.definition = definition
            return true
        }
    }

    public func disableWebhookSink(named name: String, reason: String) async throws {
        try webhookSinkRecords.withLock { (sinks: inout [String: WebhookSinkRecord]) throws(StoreError) in
            guard sinks[name] != nil else { throw Self.unknownSink(name) }
            sinks[name]?.enabled = false
            sinks[name]?.disabledReason = reason
        }
    }

    public func deleteWebhookSink(named name: String) async throws -> Bool {
        webhookSinkRecords.withLock { $0.removeValue(forKey: name) != nil }
    }
}
