import FluxCore
import FluxWire
import Logging
import NIOCore
import Synchronization

/// Fans new events out to live subscribers: woken by commits, it reads each new event from the store once,
/// encodes it once, and hands the same bytes to every matching live subscriber.
///
/// A subscriber joins the live tail only once it has read, by itself, everything up to the hub's dispatch
/// point; the hub then sends it only events after the subscriber's own position. The seam is therefore
/// position-based: nothing is skipped, nothing is sent twice. A subscriber whose sink refuses a batch
/// (slow reader) is detached and told the position it had reached; it catches up from the store and
/// joins again.
public final class SubscriptionHub: Sendable {
    /// The result of trying to join the live tail.
    public enum JoinResult: Sendable {
        /// Live: wait for `detached(id)` to learn where delivery stopped.
        case joined
        /// The hub has dispatched events beyond the subscriber's position: read more from the store first.
        case behind(dispatched: Position)
    }

    private struct LiveSubscriber {
        var position: Position
        var filter: EventFilter
        var baseURL: String
        var sink: any SubscriberSink
        var onDetach: CheckedContinuation<Position, Never>?
        var detachedAt: Position?
    }

    private struct State {
        var dispatched: Position?
        var live: [UInt64: LiveSubscriber] = [:]
        var fellBehind = 0
        var nextID: UInt64 = 0
        var stopped = false
    }

    private let store: any EventStore
    private let pageSize: Int
    /// Live batches by bytes as well: one batch is shared by every subscriber, but 1,000 large events are still large.
    private let pages: PageSizer
    private let logger: Logger
    private let state = Mutex(State())
    /// The gateway's metrics: the hub counts subscribers falling behind; its subscription drivers, their lag.
    public let metrics: GatewayMetrics

    /// - Parameter maxPageBytes: about how many bytes of events one batch holds (at least one event).
    public init(
        store: any EventStore, pageSize: Int = 1000, maxPageBytes: Int = 1 << 20, logger: Logger, metrics: GatewayMetrics = GatewayMetrics()
    ) {
        self.store = store
        self.pageSize = pageSize
        self.pages = PageSizer(byteBudget: maxPageBytes)
        self.logger = logger
        self.metrics = metrics
    }

    /// A new subscriber id.
    public func makeSubscriberID() -> UInt64 {
        state.withLock { state in
            state.nextID += 1
            return state.nextID
        }
    }

    /// The number of live subscribers (for health and tests).
    public var liveCount: Int { state.withLock { $0.live.count } }

    /// How many times a live subscriber fell behind and went back to the store.
    public var fellBehindCount: Int { state.withLock { $0.fellBehind } }

    /// Joins the live tail when `position` (what the subscriber has read, filter applied) reaches the
    /// hub's dispatch point.
    public func join(
        id: UInt64, position: Position, filter: EventFilter, baseURL: String, sink: any SubscriberSink
    ) -> JoinResult {
        state.withLock { state in
            guard let dispatched = state.dispatched, !state.stopped else { return .behind(dispatched: state.dispatched ?? .start) }
            guard position >= dispatched else { return .behind(dispatched: dispatched) }
            state.live[id] = LiveSubscriber(position: position, filter: filter, baseURL: baseURL, sink: sink)
            return .joined
        }
    }

    /// Waits until the subscriber is detached (fell behind, left, or the hub stopped); returns the
    /// position delivered through (`joinedAt` if it was already gone). Cancellation detaches it.
    public func detached(id: UInt64, joinedAt: Position) async -> Position {
        await withTaskCancellationHandler {
            await waitForDetach(id: id, joinedAt: joinedAt)
        } onCancel: {
            leave(id: id)
        }
    }

    private func waitForDetach(id: UInt64, joinedAt: Position) async -> Position {
        await withCheckedContinuation { (continuation: CheckedContinuation<Position, Never>) in
            let ready: Position? = state.withLock { state in
                guard var subscriber = state.live[id] else { return joinedAt }
                if let position = subscriber.detachedAt {
                    state.live[id] = nil
                    return position
                }
                subscriber.onDetach = continuation
                state.live[id] = subscriber
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    /// Removes a subscriber (its connection closed); wakes its `detached` waiter.
    public func leave(id: UInt64) {
        let waiter: (CheckedContinuation<Position, Never>, Position)? = state.withLock { state in
            guard let subscriber = state.live.removeValue(forKey: id) else { return nil }
            return subscriber.onDetach.map { ($0, subscriber.position) }
        }
        if let (continuation, position) = waiter { continuation.resume(returning: position) }
    }

    /// Runs the fan-out loop until cancelled or the store fails (run it again to resume). `safetyPoll`
    /// bounds the wait for a wake-up: a lost notification costs at most that much latency, never an event.
    public func run(safetyPoll: Duration = .seconds(1)) async throws {
        // After a restart (store error), carry on from where dispatch stopped: live subscribers are there.
        let head = try await store.head()
        var dispatched = state.withLock { state in
            if state.dispatched == nil { state.dispatched = head }
            return state.dispatched ?? head
        }
        while !Task.isCancelled {
            let head = try await store.waitForHead(beyond: dispatched, timeout: safetyPoll)
            while dispatched < head, !Task.isCancelled {
                let (page, _) = try await pages.read(from: store, after: dispatched, limit: pageSize, filter: .all)
                guard let last = page.last else { break }
                for issued in deliver(page) { try? await issued.get() }
                dispatched = last.position
            }
        }
    }

    /// Detaches every live subscriber (server stopping).
    public func stop() {
        let waiters: [(CheckedContinuation<Position, Never>, Position)] = state.withLock { state in
            state.stopped = true
            var waiters: [(CheckedContinuation<Position, Never>, Position)] = []
            for (id, subscriber) in state.live {
                if let continuation = subscriber.onDetach {
                    waiters.append((continuation, subscriber.position))
                    state.live[id] = nil
                } else {
                    state.live[id]?.detachedAt = subscriber.position
                }
            }
            return waiters
        }
        for (continuation, position) in waiters { continuation.resume(returning: position) }
    }

    private struct GroupKey: Hashable {
        var filter: EventFilter
        var baseURL: String
    }

    /// Hands one page to the live subscribers; encodes each event once per base URL, each batch once per group.
    /// Returns when each event loop will have issued its writes.
    private func deliver(_ page: [RecordedEvent]) -> [EventLoopFuture<Void>] {
        guard let last = page.last else { return [] }
        var encodedByBase: [String: [EncodedEvent]] = [:]
        var batches: [GroupKey: DeliveryBatch?] = [:]
        let epoch = store.epoch
        let writes = OutboundWriteBatch()
        let detached: [(CheckedContinuation<Position, Never>, Position)] = state.withLock { state in
            var detached: [(CheckedContinuation<Position, Never>, Position)] = []
            for (id, subscriber) in state.live where subscriber.detachedAt == nil {
                let key = GroupKey(filter: subscriber.filter, baseURL: subscriber.baseURL)
                let batch: DeliveryBatch?
                if let cached = batches[key] {
                    batch = cached
                } else {
                    let encoded = encodedByBase[subscriber.baseURL] ?? page.map { EncodedEvent($0, encoder: EnvelopeEncoder(baseURL: subscriber.baseURL)) }
                    encodedByBase[subscriber.baseURL] = encoded
                    let matching = subscriber.filter.isEmpty ? encoded : encoded.filter { subscriber.filter.matches($0.event) }
                    batch = matching.isEmpty ? nil : DeliveryBatch(events: matching, epoch: epoch)
                    batches[key] = batch
                }
                var subscriber = subscriber
                if let batch {
                    // A subscriber that joined ahead of the hub skips what it already has.
                    let send: DeliveryBatch?
                    if let firstNew = batch.events.firstIndex(where: { $0.position > subscriber.position }) {
                        send = firstNew == 0 ? batch : DeliveryBatch(events: Array(batch.events[firstNew...]), epoch: epoch)
                    } else {
                        send = nil
                    }
                    if let send {
                        guard send.lastPosition > subscriber.position else { continue }
                        if !subscriber.sink.offer(send, writes: writes) {
                            // Falls behind: it resumes from the store after what it got.
                            state.fellBehind += 1
                            metrics.recordFellBehind()
                            if let continuation = subscriber.onDetach {
                                detached.append((continuation, subscriber.position))
                                state.live[id] = nil
                            } else {
                                subscriber.detachedAt = subscriber.position
                                state.live[id] = subscriber
                            }
                            continue
                        }
                    }
                }
                subscriber.position = max(subscriber.position, last.position)
                state.live[id] = subscriber
            }
            state.dispatched = last.position
            return detached
        }
        for (continuation, position) in detached { continuation.resume(returning: position) }
        return writes.submit()
    }
}
