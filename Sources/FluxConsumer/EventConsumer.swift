import FluxCore
import Logging
import Synchronization

/// Why a consumer stopped with an error.
public struct ConsumerError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable {
        private let name: String
        private init(_ name: String) { self.name = name }
        /// The gateway's store is not the one the checkpoint was taken from (PROTOCOL.md epochs): the
        /// offsets mean nothing there. Never reset silently: delete the checkpoint deliberately to start over.
        public static let epochMismatch = Code("epoch mismatch")
        /// The gateway refused the subscription for good (bad query, not authorized).
        public static let refused = Code("refused")
    }

    public var code: Code
    public var message: String
    public var description: String { message }
}

/// Consumes a gateway's events into a handler, at least once, resuming from a stored checkpoint.
///
/// After the handler returns for an event, its position is saved in the checkpoint store; after a restart
/// the consumer resumes right after the saved position. A read model keyed by position therefore sees each
/// event once in effect. Transport: long-polling of the JSON feed (it works through any proxy); the push
/// channel is used when available.
public final class EventConsumer: Sendable {
    /// Settings of a consumer.
    public struct Configuration: Sendable {
        /// Events per page when polling.
        public var pageSize: Int = 500
        /// Long-poll wait at the head, in seconds.
        public var waitSeconds: Int = 20
        /// Reconnect backoff: first delay and cap (with full jitter).
        public var initialBackoff: Duration = .milliseconds(100)
        public var maximumBackoff: Duration = .seconds(10)
        public var logger = Logger(label: "fluxgate.consumer")

        public init() {}
    }

    private enum RunState {
        case running
        case paused([CheckedContinuation<Void, Never>])
        case stopped
    }

    private let host: String
    private let port: Int
    private let name: String
    private let checkpoints: any CheckpointStore
    private let filter: EventFilter
    private let configuration: Configuration
    private let state = Mutex(RunState.running)
    private let cancelWork = Mutex<(@Sendable () -> Void)?>(nil)

    /// - Parameters:
    ///   - name: the consumer's name: its checkpoint's key.
    public init(
        host: String, port: Int, name: String, checkpoints: any CheckpointStore, filter: EventFilter = .all,
        configuration: Configuration = Configuration()
    ) {
        self.host = host
        self.port = port
        self.name = name
        self.checkpoints = checkpoints
        self.filter = filter
        self.configuration = configuration
    }

    /// Stops delivering events until `resume()`; takes effect before the next event is handed over.
    public func pause() {
        state.withLock { state in
            if case .running = state { state = .paused([]) }
        }
    }

    /// Resumes after `pause()`.
    public func resume() {
        let waiters: [CheckedContinuation<Void, Never>] = state.withLock { state in
            guard case .paused(let waiters) = state else { return [] }
            state = .running
            return waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Ends `run` at once: a waiting poll is abandoned; a handler already running sees task cancellation
    /// (its event's checkpoint is saved only if it returns normally, so the event comes again next time).
    public func stop() {
        let waiters: [CheckedContinuation<Void, Never>] = state.withLock { state in
            defer { state = .stopped }
            if case .paused(let waiters) = state { return waiters }
            return []
        }
        for waiter in waiters { waiter.resume() }
        cancelWork.withLock { $0 }?()
    }

    public var isStopped: Bool { state.withLock { if case .stopped = $0 { true } else { false } } }

    /// Waits while paused; returns `false` when stopped.
    private func waitWhilePaused() async -> Bool {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let proceed: Bool = state.withLock { state in
                switch state {
                case .running, .stopped: return true
                case .paused(var waiters):
                    waiters.append(continuation)
                    state = .paused(waiters)
                    return false
                }
            }
            if proceed { continuation.resume() }
        }
        return !isStopped
    }

    /// Delivers events to `handler` until `stop()` or an unrecoverable error (`ConsumerError`). Network
    /// errors are retried with exponential backoff and jitter.
    public func run(_ handler: @escaping @Sendable (RecordedEvent) async throws -> Void) async throws {
        let work = Task<Void, any Error> { try await consume(handler) }
        cancelWork.withLock { $0 = { work.cancel() } }
        if isStopped { work.cancel() }
        try await withTaskCancellationHandler {
            try await work.value
        } onCancel: {
            work.cancel()
        }
    }

    private func consume(_ handler: @escaping @Sendable (RecordedEvent) async throws -> Void) async throws {
        let saved = try await checkpoints.load(consumer: name)
        let poller = FeedPoller(host: host, port: port, after: saved?.position ?? .start, filter: filter, pageSize: configuration.pageSize, waitSeconds: configuration.waitSeconds)
        do {
            try await poll(poller, from: saved, handler)
        } catch {
            await poller.close()
            throw error
        }
        await poller.close()
    }

    private func poll(_ poller: FeedPoller, from saved: Checkpoint?, _ handler: @escaping @Sendable (RecordedEvent) async throws -> Void) async throws {
        var position = saved?.position ?? .start
        var epoch = saved?.epoch
        var backoff = configuration.initialBackoff
        while !isStopped {
            guard await waitWhilePaused() else { break }
            let page: FeedPage
            do {
                page = try await poller.nextPage(after: position)
                backoff = configuration.initialBackoff
            } catch {
                if isStopped || Task.isCancelled { break }
                configuration.logger.warning("feed unavailable; retrying", metadata: ["error": "\(error)", "backoff": "\(backoff)"])
                try? await Task.sleep(for: Self.jittered(backoff))
                backoff = min(backoff * 2, configuration.maximumBackoff)
                continue
            }
            if let expected = epoch, page.epoch != expected {
                throw ConsumerError(
                    code: .epochMismatch,
                    message: "consumer \(name) has a checkpoint at position \(position) of store epoch \(expected), but the gateway serves epoch \(page.epoch); delete the checkpoint deliberately to start over"
                )
            }
            epoch = page.epoch
            for event in page.events where event.position > position {
                guard await waitWhilePaused() else { return }
                try await handler(event)
                if Task.isCancelled { return }
                position = event.position
                try await checkpoints.save(Checkpoint(position: position, epoch: page.epoch), consumer: name)
            }
        }
    }

    static func jittered(_ duration: Duration) -> Duration {
        let nanoseconds = duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000
        return .nanoseconds(Int64.random(in: 0...max(1, nanoseconds)))
    }
}
