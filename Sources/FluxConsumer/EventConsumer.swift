import FluxCore
import Logging
import Synchronization

/// Why a consumer stopped with an error.
public struct ConsumerError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable {
        private let name: String
        private init(_ name: String) { self.name = name }
        /// The gateway's store is not the one the checkpoint was taken from (README "Wire protocol", epochs): the
        /// offsets mean nothing there. Never reset silently: delete the checkpoint deliberately to start over.
        public static let epochMismatch = Code("epoch mismatch")
        /// The gateway refused the subscription for good (bad query, not authorized).
        public static let refused = Code("refused")
        /// TLS with the gateway failed in a way retrying cannot mend (its certificate is not trusted, does not
        /// name the host, or it does not speak TLS); the message says which, and what to do.
        public static let tlsFailed = Code("TLS failed")
        /// The gateway refused the access token (401: none, bad or expired; 403: it lacks the read scope).
        public static let unauthorized = Code("unauthorized")
    }

    public var code: Code
    public var message: String
    public var description: String { message }
}

/// Consumes a gateway's events into a handler, at least once, resuming from a stored checkpoint.
///
/// After the handler returns for an event, its position is saved in the checkpoint store; after a restart
/// the consumer resumes right after the saved position. A read model keyed by position therefore sees each
/// event once in effect. Transport: the WebSocket push channel; when the upgrade is refused (a proxy
/// answers 4xx/5xx), long-polling of the JSON feed, trying the push channel again now and then.
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
        /// Which transport to use.
        public var transport: Transport = .automatic
        /// After the push channel was refused, how long to poll before trying it again.
        public var retryPushChannelAfter: Duration = .seconds(30)
        /// Connect over TLS (`wss://`, `https://`) with these trust settings: `try ClientTLS()` for the system
        /// trust store, `try ClientTLS(caFile: "ca.pem")` for a private CA; `nil` (the default) is plain TCP.
        public var tls: ClientTLS? = nil
        /// A bearer token for a gateway with access control (sent as `Authorization: Bearer …`); it needs the
        /// `read` scope (or `read:NAME` for the aggregates the filter names).
        public var accessToken: String? = nil
        /// Called when the gateway cannot be reached (refused, reset, timed out, a 5xx) and the consumer waits to try
        /// again: what failed, and the wait. For a user interface ("waiting for the gateway…"); the consumer retries
        /// whatever it does.
        public var onRetry: (@Sendable (RetryNotice) -> Void)? = nil

        /// Why the consumer is about to retry, and when.
        public struct RetryNotice: Sendable {
            /// What failed: the push channel's connection or the feed's request.
            public var error: any Error
            /// How long the consumer waits before the next attempt.
            public var delay: Duration
        }

        /// How events reach the consumer.
        public enum Transport: Sendable {
            /// The WebSocket push channel; long-polling while it is refused.
            case automatic
            /// Long-polling of the JSON feed only.
            case polling
        }

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
    private let start: Position
    private let configuration: Configuration
    private let state = Mutex(RunState.running)
    private let cancelWork = Mutex<(@Sendable () -> Void)?>(nil)

    /// - Parameters:
    ///   - name: the consumer's name: its checkpoint's key.
    ///   - start: where to start when the consumer has no checkpoint yet (after this position).
    public init(
        host: String, port: Int, name: String, checkpoints: any CheckpointStore, filter: EventFilter = .all,
        start: Position = .start, configuration: Configuration = Configuration()
    ) {
        self.start = start
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

    /// Where the consumer is in the feed.
    private struct Progress {
        var position: Position
        var epoch: StoreEpoch?
    }

    private func consume(_ handler: @escaping @Sendable (RecordedEvent) async throws -> Void) async throws {
        let saved = try await checkpoints.load(consumer: name)
        var progress = Progress(position: saved?.position ?? start, epoch: saved?.epoch)
        var backoff = configuration.initialBackoff
        var pollUntil: ContinuousClock.Instant?
        let poller = FeedPoller(host: host, port: port, after: progress.position, filter: filter, pageSize: configuration.pageSize, waitSeconds: configuration.waitSeconds, tls: configuration.tls,
            accessToken: configuration.accessToken)
        do {
            while !isStopped, !Task.isCancelled {
                guard await waitWhilePaused() else { break }
                if configuration.transport == .automatic, pollUntil.map({ ContinuousClock.now >= $0 }) ?? true {
                    var failure: (any Error)?
                    do {
                        let delivered = try await subscribe(&progress, handler)
                        if delivered { backoff = configuration.initialBackoff }
                        // The gateway closed (restart, 1001) or the connection dropped: reconnect.
                    } catch let error as PushChannelError where error.refusedStatus == 401 || error.refusedStatus == 403 {
                        throw ConsumerError(
                            code: .unauthorized,
                            message: "consumer \(name): the gateway refused the access token (\(error.refusedStatus ?? 0)): \(error.message)"
                        )
                    } catch let error as PushChannelError where error.refusedStatus != nil {
                        // No push channel on this path (a proxy refuses the upgrade): poll, try again later.
                        configuration.logger.info("push channel refused; polling the feed", metadata: ["status": "\(error.refusedStatus ?? 0)"])
                        pollUntil = ContinuousClock.now + configuration.retryPushChannelAfter
                        continue
                    } catch let error as ConsumerError {
                        throw error
                    } catch let error as ClientTLSError where !error.isRetryable {
                        throw ConsumerError(code: .tlsFailed, message: "consumer \(name): \(error.message)")
                    } catch let failure as DeliveryFailure {
                        throw failure.underlying
                    } catch is CancellationError {
                        break
                    } catch {
                        if isStopped || Task.isCancelled { break }
                        configuration.logger.warning("push channel failed; reconnecting", metadata: ["error": "\(error)"])
                        failure = error
                    }
                    if isStopped || Task.isCancelled { break }
                    let delay = Self.jittered(backoff)
                    if let failure { configuration.onRetry?(.init(error: failure, delay: delay)) }
                    try? await Task.sleep(for: delay)
                    backoff = min(backoff * 2, configuration.maximumBackoff)
                } else {
                    let until = configuration.transport == .polling ? nil : pollUntil
                    do {
                        try await poll(poller, &progress, until: until, handler)
                    } catch let failure as DeliveryFailure {
                        throw failure.underlying
                    }
                    pollUntil = nil
                }
            }
        } catch {
            await poller.close()
            throw error
        }
        await poller.close()
    }

    /// Follows the push channel until it closes; returns whether any event was delivered.
    private func subscribe(_ progress: inout Progress, _ handler: @escaping @Sendable (RecordedEvent) async throws -> Void) async throws -> Bool {
        var target = "/events/subscribe?after=\(progress.position.rawValue)"
        if let epoch = progress.epoch { target += "&epoch=\(epoch.rawValue.addingPercentEscapes())" }
        for (name, values) in [("aggregate_name", filter.aggregateNames), ("event_type", filter.eventTypes), ("aggregate_id", filter.aggregateIDs)] {
            for value in values.sorted() { target += "&\(name)=\(value.addingPercentEscapes())" }
        }
        let headers = configuration.accessToken.map { [("Authorization", "Bearer \($0)")] } ?? []
        let connection = try await PushChannelConnection.connect(host: host, port: port, target: target, tls: configuration.tls, headers: headers)
        var delivered = false
        do {
            while let message = try await connection.next() {
                guard case .events(let epoch, let events) = message else { continue }
                try checkEpoch(epoch, progress)
                progress.epoch = epoch
                for event in events where event.position > progress.position {
                    guard await waitWhilePaused() else {
                        await connection.close()
                        return delivered
                    }
                    try await deliver(event, epoch: epoch, handler)
                    if Task.isCancelled { break }
                    progress.position = event.position
                    delivered = true
                }
                try? await connection.acknowledge(progress.position)
            }
        } catch {
            await connection.close()
            throw error
        }
        let close = await connection.close
        await connection.close()
        switch close?.code {
        case 4409:
            throw ConsumerError(code: .epochMismatch, message: "consumer \(name): \(close?.reason ?? "the gateway serves another store"); delete the checkpoint deliberately to start over")
        case 4400, 1008:
            throw ConsumerError(code: .refused, message: "consumer \(name): the gateway refused the subscription: \(close?.reason ?? "")")
        default:
            return delivered
        }
    }

    /// An error of the handler or the checkpoint store: it ends `run`, unlike network errors.
    private struct DeliveryFailure: Error {
        var underlying: any Error
    }

    /// Hands one event to the handler, then saves its position (at least once).
    private func deliver(_ event: RecordedEvent, epoch: StoreEpoch, _ handler: @Sendable (RecordedEvent) async throws -> Void) async throws {
        do {
            try await handler(event)
            if Task.isCancelled { return }
            try await checkpoints.save(Checkpoint(position: event.position, epoch: epoch), consumer: name)
        } catch {
            throw DeliveryFailure(underlying: error)
        }
    }

    private func checkEpoch(_ epoch: StoreEpoch, _ progress: Progress) throws {
        if let expected = progress.epoch, epoch != expected {
            throw ConsumerError(
                code: .epochMismatch,
                message: "consumer \(name) has a checkpoint at position \(progress.position) of store epoch \(expected), but the gateway serves epoch \(epoch); delete the checkpoint deliberately to start over"
            )
        }
    }

    /// Long-polls the JSON feed until `until` (forever when `nil`), stop, or a network error (retried).
    private func poll(
        _ poller: FeedPoller, _ progress: inout Progress, until: ContinuousClock.Instant?,
        _ handler: @escaping @Sendable (RecordedEvent) async throws -> Void
    ) async throws {
        var backoff = configuration.initialBackoff
        while !isStopped, !Task.isCancelled, until.map({ ContinuousClock.now < $0 }) ?? true {
            guard await waitWhilePaused() else { return }
            let page: FeedPage
            do {
                page = try await poller.nextPage(after: progress.position)
                backoff = configuration.initialBackoff
            } catch let error as ClientTLSError where !error.isRetryable {
                throw ConsumerError(code: .tlsFailed, message: "consumer \(name): \(error.message)")
            } catch let error as FeedRefusedError {
                throw ConsumerError(code: .unauthorized, message: "consumer \(name): \(error.message)")
            } catch {
                if isStopped || Task.isCancelled { return }
                configuration.logger.warning("feed unavailable; retrying", metadata: ["error": "\(error)", "backoff": "\(backoff)"])
                let delay = Self.jittered(backoff)
                configuration.onRetry?(.init(error: error, delay: delay))
                try? await Task.sleep(for: delay)
                backoff = min(backoff * 2, configuration.maximumBackoff)
                continue
            }
            try checkEpoch(page.epoch, progress)
            progress.epoch = page.epoch
            for event in page.events where event.position > progress.position {
                guard await waitWhilePaused() else { return }
                try await deliver(event, epoch: page.epoch, handler)
                if Task.isCancelled { return }
                progress.position = event.position
            }
        }
    }

    static func jittered(_ duration: Duration) -> Duration {
        let nanoseconds = duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000
        return .nanoseconds(Int64.random(in: 0...max(1, nanoseconds)))
    }
}
