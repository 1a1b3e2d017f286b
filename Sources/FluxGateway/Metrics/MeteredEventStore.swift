import FluxCore

/// Wraps the gateway's store to feed ``GatewayMetrics``: times appends and reads, counts appends and
/// conflicts, and notes every head it sees. Everything else is the wrapped store's.
struct MeteredEventStore: EventStore {
    let base: any EventStore
    let metrics: GatewayMetrics

    init(_ base: any EventStore, metrics: GatewayMetrics) {
        self.base = base
        self.metrics = metrics
    }

    var epoch: StoreEpoch { base.epoch }

    func head() async throws -> Position {
        let head = try await base.head()
        metrics.observeHead(head)
        return head
    }

    func read(after position: Position, limit: Int, filter: EventFilter) async throws -> [RecordedEvent] {
        let started = ContinuousClock.now
        defer { metrics.recordStoreCall(.read, duration: ContinuousClock.now - started) }
        return try await base.read(after: position, limit: limit, filter: filter)
    }

    func readStream(_ aggregateID: String, fromVersion: Int64, limit: Int) async throws -> [RecordedEvent] {
        let started = ContinuousClock.now
        defer { metrics.recordStoreCall(.readStream, duration: ContinuousClock.now - started) }
        return try await base.readStream(aggregateID, fromVersion: fromVersion, limit: limit)
    }

    func event(id: String) async throws -> RecordedEvent? {
        let started = ContinuousClock.now
        defer { metrics.recordStoreCall(.readEvent, duration: ContinuousClock.now - started) }
        return try await base.event(id: id)
    }

    func streams(after cursor: String?, prefix: String, aggregateNames: Set<String>, limit: Int) async throws -> [StreamSummary] {
        let started = ContinuousClock.now
        defer { metrics.recordStoreCall(.listStreams, duration: ContinuousClock.now - started) }
        return try await base.streams(after: cursor, prefix: prefix, aggregateNames: aggregateNames, limit: limit)
    }

    func waitForHead(beyond position: Position, timeout: Duration) async throws -> Position {
        let head = try await base.waitForHead(beyond: position, timeout: timeout)
        metrics.observeHead(head)
        return head
    }

    func append(_ request: AppendRequest) async throws -> AppendResult {
        let started = ContinuousClock.now
        defer { metrics.recordStoreCall(.append, duration: ContinuousClock.now - started) }
        do {
            let result = try await base.append(request)
            metrics.recordAppend(events: request.events.count, result: result)
            return result
        } catch {
            if StoreError.conflict ~= error { metrics.recordConflict() }
            throw error
        }
    }
}
