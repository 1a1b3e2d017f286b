import Dispatch
import Synchronization

/// The queue in front of an event store's writer, shared by the SQLite and PostgreSQL stores: appends queue here,
/// and writer loops take them in batches that each commit in one transaction (group commit), so one sync to disk or
/// one round trip serves many appenders.
///
/// It decides only *when*, never *how*: which appends form a batch (arrival order, at most ``maximumBatch``), when a
/// writer loop must start (an append arrives and fewer than ``maximumWriters`` run), when a loop ends (it asks for a
/// batch and none is queued), how long a loop waits for its next batch to fill (``gather(until:within:)``), and that
/// closing refuses new appends and waits for the loops to answer every queued one. A store's committer owns the
/// transaction, the results and the statistics.
///
/// A writer loop's life: ``enqueue(_:)`` answers ``Admission/startWriter`` to exactly one caller per loop to start;
/// that loop calls ``nextBatch()`` until it answers `nil`, after which the loop has been counted out and must end.
/// A loop may run on a dispatch queue (SQLite: `gatherBlocking`) or in a task (PostgreSQL: `gather`).
package final class GroupCommitQueue<Item: Sendable>: Sendable {
    /// What ``enqueue(_:)`` asks of its caller.
    package enum Admission: Equatable, Sendable {
        /// The queue is closed: the items were not queued; fail them.
        case refused
        /// The items are queued and no loop may take them yet: start one writer loop.
        case startWriter
        /// The items are queued; a running loop takes them.
        case queued
    }

    private enum GatherWaiter {
        case task(CheckedContinuation<Void, Never>)
        case thread
    }

    private struct State {
        var items: [Item] = []
        var writers = 0
        var closed = false
        var closeWaiters: [CheckedContinuation<Void, Never>] = []
        /// While a loop gathers: the queue length that ends its wait early, and how to wake it.
        var gatherTarget: Int?
        var gatherWaiter: GatherWaiter?
        /// Counts gathers, so that a window's timer ends only its own.
        var gatherGeneration = 0
        var expiredGatherWindows = 0
    }

    /// The most items one batch holds: bounds a transaction's duration and memory.
    package let maximumBatch: Int
    /// The most writer loops at once (1 for SQLite's single writer; PostgreSQL's batches in flight).
    package let maximumWriters: Int
    private let state = Mutex(State())
    /// Wakes a loop gathering on a thread (`gatherBlocking`).
    private let threadWake = DispatchSemaphore(value: 0)

    package init(maximumBatch: Int, maximumWriters: Int) {
        precondition(maximumBatch > 0 && maximumWriters > 0, "a group-commit queue needs room for one item and one writer")
        self.maximumBatch = maximumBatch
        self.maximumWriters = maximumWriters
    }

    /// Items queued and not yet taken.
    package var queued: Int { state.withLock { $0.items.count } }

    /// Writer loops running.
    package var writers: Int { state.withLock { $0.writers } }

    /// Whether ``close()`` was called.
    package var isClosed: Bool { state.withLock { $0.closed } }

    /// Times a loop's gather window ended before the queue reached its target.
    package var expiredGatherWindows: Int { state.withLock { $0.expiredGatherWindows } }

    /// Queues `items` one after the other (a loop takes them in this order, in one batch unless they are more than
    /// ``maximumBatch``), wakes a gathering loop whose target they reach, and tells the caller what to do.
    package func enqueue(_ items: [Item]) -> Admission {
        let (admission, wake): (Admission, GatherWaiter?) = state.withLock { state in
            if state.closed { return (.refused, nil) }
            state.items += items
            var wake: GatherWaiter?
            if let target = state.gatherTarget, state.items.count >= target {
                wake = state.gatherWaiter
                state.gatherTarget = nil
                state.gatherWaiter = nil
            }
            guard state.writers < maximumWriters else { return (.queued, wake) }
            state.writers += 1
            return (.startWriter, wake)
        }
        Self.resume(wake, threadWake)
        return admission
    }

    /// The next batch for a writer loop: the oldest queued items, at most ``maximumBatch``. `nil` when none is
    /// queued: the loop is then counted out and must end (and the last one to end releases ``close()``).
    package func nextBatch() -> [Item]? {
        let (batch, released): ([Item]?, [CheckedContinuation<Void, Never>]) = state.withLock { state in
            if state.items.isEmpty {
                state.writers -= 1
                guard state.writers == 0 else { return (nil, []) }
                defer { state.closeWaiters = [] }
                return (nil, state.closeWaiters)
            }
            let count = min(state.items.count, maximumBatch)
            if count == state.items.count {
                defer { state.items = [] }
                return (state.items, [])
            }
            defer { state.items.removeFirst(count) }
            return (Array(state.items.prefix(count)), [])
        }
        for waiter in released { waiter.resume() }
        return batch
    }

    /// Waits, in a task, until `target` items are queued, but no longer than `window`; returns at once when they are
    /// or the queue is closed.
    ///
    /// Appenders answered by a batch often append again at once (a command handler, a client with requests in flight):
    /// taking the next batch before they are back would commit a few alone and make the others wait for a whole further
    /// transaction, which costs as much for one as for many. A window of half the last transaction (the trade-off of
    /// PostgreSQL's `commit_delay`) delays the items already queued by less than that transaction.
    package func gather(until target: Int, within window: Duration) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            guard let generation = beginGather(until: target, .task(continuation)) else {
                continuation.resume()
                return
            }
            Task {
                try? await Task.sleep(for: window)
                Self.resume(self.endGather(generation), self.threadWake)
            }
        }
    }

    /// ``gather(until:within:)`` for a loop on a thread of its own (a dispatch queue that may block).
    package func gatherBlocking(until target: Int, within window: Duration) {
        guard let generation = beginGather(until: target, .thread) else { return }
        let nanoseconds = Int(min(window, .seconds(60)) / .nanoseconds(1))
        guard threadWake.wait(timeout: .now() + .nanoseconds(max(0, nanoseconds))) == .timedOut else { return }
        if endGather(generation) == nil {
            // An enqueue that reached the target as the window ended has signalled, or is about to: take its signal.
            threadWake.wait()
        }
    }

    /// Refuses new items and waits until every writer loop has ended (each queued item was taken and answered).
    package func close() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let idle: Bool = state.withLock { state in
                state.closed = true
                if state.writers == 0 { return true }
                state.closeWaiters.append(continuation)
                return false
            }
            if idle { continuation.resume() }
        }
    }

    /// Registers a gathering loop; `nil` when it need not wait.
    private func beginGather(until target: Int, _ waiter: GatherWaiter) -> Int? {
        state.withLock { state in
            if state.closed || state.items.count >= min(target, maximumBatch) { return nil }
            state.gatherTarget = min(target, maximumBatch)
            state.gatherWaiter = waiter
            state.gatherGeneration += 1
            return state.gatherGeneration
        }
    }

    /// The window of gather `generation` ended: returns its waiter if no enqueue woke it first.
    private func endGather(_ generation: Int) -> GatherWaiter? {
        state.withLock { state in
            guard state.gatherGeneration == generation, let waiter = state.gatherWaiter else { return nil }
            state.gatherTarget = nil
            state.gatherWaiter = nil
            state.expiredGatherWindows += 1
            return waiter
        }
    }

    private static func resume(_ waiter: GatherWaiter?, _ threadWake: DispatchSemaphore) {
        switch waiter {
        case .task(let continuation)?: continuation.resume()
        case .thread?: threadWake.signal()
        case nil: break
        }
    }
}
