import Synchronization

/// A thread-safe event store in memory: for tests, demos and single-process tools. Nothing survives the process.
public final class InMemoryEventStore: EventStore {
    private struct Stream {
        var aggregateName: String
        /// Indices into `events`, in version order (index == version).
        var eventIndices: [Int] = []
    }

    private struct State {
        var events: [RecordedEvent] = []
        var streams: [String: Stream] = [:]
        var indexByEventID: [String: Int] = [:]
    }

    public let epoch: StoreEpoch
    private let state = Mutex(State())
    /// Consumer groups (`ConsumerGroupStore`), by name.
    let consumerGroupRecords = Mutex<[String: ConsumerGroupRecord]>([:])
    /// Webhook sinks (`WebhookSinkStore`), by name.
    let webhookSinkRecords = Mutex<[String: WebhookSinkRecord]>([:])
    private let signal = HeadSignal()
    private let clock: @Sendable () -> Int64

    /// - Parameters:
    ///   - epoch: the store's identity (a new random one by default).
    ///   - clock: milliseconds since 1970 for `recorded_at` (the system clock by default).
    public init(epoch: StoreEpoch = .random(), clock: @escaping @Sendable () -> Int64 = Timestamp.nowMilliseconds) {
        self.epoch = epoch
        self.clock = clock
    }

    public func head() async throws -> Position {
        state.withLock { Position(Int64($0.events.count)) }
    }

    public func read(after position: Position, limit: Int, filter: EventFilter) async throws -> [RecordedEvent] {
        guard limit > 0 else { return [] }
        return state.withLock { state in
            var result: [RecordedEvent] = []
            var index = Int(max(position.rawValue, 0))
            while index < state.events.count, result.count < limit {
                let event = state.events[index]
                if filter.matches(event) { result.append(event) }
                index += 1
            }
            return result
        }
    }

    public func readStream(_ aggregateID: String, fromVersion: Int64, limit: Int) async throws -> [RecordedEvent] {
        guard limit > 0 else { return [] }
        return state.withLock { state in
            guard let stream = state.streams[aggregateID] else { return [] }
            let start = Int(max(fromVersion, 0))
            guard start < stream.eventIndices.count else { return [] }
            let end = min(stream.eventIndices.count, start + limit)
            return stream.eventIndices[start..<end].map { state.events[$0] }
        }
    }

    public func event(id: String) async throws -> RecordedEvent? {
        state.withLock { state in state.indexByEventID[id].map { state.events[$0] } }
    }

    /// Filters and sorts the streams on each call (O(streams)): this store is for tests and demos.
    public func streams(after cursor: String?, prefix: String, aggregateNames: Set<String>, limit: Int) async throws -> [StreamSummary] {
        guard limit > 0, let names = StreamListing.printableArguments(after: cursor, prefix: prefix, aggregateNames: aggregateNames) else {
            return []
        }
        let start = StreamListing.start(after: cursor, prefix: prefix)
        return state.withLock { state in
            var found: [(id: String, last: Int)] = []
            for (id, stream) in state.streams {
                guard let last = stream.eventIndices.last, StreamListing.hasPrefix(id, prefix),
                    start.inclusive ? !StreamListing.precedes(id, start.bound) : StreamListing.precedes(start.bound, id),
                    names.isEmpty || names.contains(stream.aggregateName)
                else { continue }
                found.append((id, last))
            }
            found.sort { StreamListing.precedes($0.id, $1.id) }
            return found.prefix(limit).map { StreamSummary(lastEvent: state.events[$0.last]) }
        }
    }

    public func waitForHead(beyond position: Position, timeout: Duration) async throws -> Position {
        await signal.wait(beyond: position, timeout: timeout)
    }

    @discardableResult
    public func append(_ request: AppendRequest) async throws -> AppendResult {
        try request.validate()
        let now = clock()
        let result: AppendResult = try state.withLock { (state: inout State) throws(StoreError) -> AppendResult in
            let stored = request.events.map { event in state.indexByEventID[event.eventID].map { state.events[$0] } }
            if case .alreadyStored(let result) = try request.idempotencyOutcome(stored: stored) {
                return result
            }
            var stream = state.streams[request.aggregateID] ?? Stream(aggregateName: request.aggregateName)
            // Byte for byte, as the other stores compare (String's == would equate canonically equivalent names).
            guard stream.aggregateName.utf8.elementsEqual(request.aggregateName.utf8) else {
                throw StoreError.nameMismatch(aggregateID: request.aggregateID, storedName: stream.aggregateName, appendedName: request.aggregateName)
            }
            let current = Int64(stream.eventIndices.count) - 1
            guard request.expectedVersion.isSatisfied(byCurrentVersion: current) else {
                throw StoreError.versionConflict(aggregateID: request.aggregateID, expected: request.expectedVersion, current: current)
            }
            let firstPosition = Position(Int64(state.events.count) + 1)
            for (offset, event) in request.events.enumerated() {
                let index = state.events.count
                state.events.append(
                    RecordedEvent(
                        eventID: event.eventID, position: Position(Int64(index) + 1), aggregateID: request.aggregateID,
                        aggregateName: request.aggregateName, version: current + 1 + Int64(offset), eventType: event.eventType,
                        recordedAtMilliseconds: now, payload: event.payload
                    )
                )
                stream.eventIndices.append(index)
                state.indexByEventID[event.eventID] = index
            }
            state.streams[request.aggregateID] = stream
            return AppendResult(
                aggregateID: request.aggregateID, firstPosition: firstPosition,
                lastPosition: Position(Int64(state.events.count)), version: current + Int64(request.events.count)
            )
        }
        signal.publish(result.lastPosition)
        return result
    }
}

/// A thread-safe checkpoint store in memory.
public final class InMemoryCheckpointStore: CheckpointStore {
    private let checkpoints = Mutex<[String: Checkpoint]>([:])

    public init() {}

    public func load(consumer: String) async throws -> Checkpoint? {
        checkpoints.withLock { $0[consumer] }
    }

    public func save(_ checkpoint: Checkpoint, consumer: String) async throws {
        checkpoints.withLock { $0[consumer] = checkpoint }
    }
}
