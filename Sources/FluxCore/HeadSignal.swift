import Synchronization

/// Wakes tasks waiting for the store's head to move past a position.
///
/// A store publishes its new head after every commit; long-polls and the fan-out hub wait on it. It only
/// carries positions, never events: waiters read the events themselves from the store.
public final class HeadSignal: Sendable {
    private struct Waiter {
        var beyond: Position
        var continuation: CheckedContinuation<Position, Never>
    }

    private struct State {
        var head: Position
        var nextID: UInt64 = 0
        var waiters: [UInt64: Waiter] = [:]
    }

    private let state: Mutex<State>
    /// Timeout tasks of waits that are running (they end with their wait); for tests.
    private let runningTimeouts = Atomic<Int>(0)

    public init(head: Position = .start) {
        state = Mutex(State(head: head))
    }

    /// The last published head.
    public var head: Position { state.withLock { $0.head } }

    /// Waits registered and not yet woken; for tests.
    var waiterCount: Int { state.withLock { $0.waiters.count } }

    /// Timeout tasks running (each ends with its wait); for tests.
    var timeoutTaskCount: Int { runningTimeouts.load(ordering: .relaxed) }

    /// Publishes a new head (ignored when it is not beyond the current one) and wakes the waiters it satisfies.
    public func publish(_ newHead: Position) {
        let ready: [CheckedContinuation<Position, Never>] = state.withLock { state in
            guard newHead > state.head else { return [] }
            state.head = newHead
            var ready: [CheckedContinuation<Position, Never>] = []
            for (id, waiter) in state.waiters where waiter.beyond < newHead {
                ready.append(waiter.continuation)
                state.waiters[id] = nil
            }
            return ready
        }
        for continuation in ready { continuation.resume(returning: newHead) }
    }

    /// Returns the head once it is beyond `position`, or the current head after `timeout`, or at cancellation.
    ///
    /// The timeout runs in a child task of the wait: when the head moves first or the caller is cancelled, it is
    /// cancelled and has ended by the time the wait returns.
    public func wait(beyond position: Position, timeout: Duration) async -> Position {
        let current = head
        if current > position || timeout <= .zero || Task.isCancelled { return current }
        let id = state.withLock { state -> UInt64 in
            state.nextID += 1
            return state.nextID
        }
        return await withTaskGroup(of: Void.self) { group in
            let woken = await withTaskCancellationHandler {
                await withCheckedContinuation { (continuation: CheckedContinuation<Position, Never>) in
                    let immediate: Position? = state.withLock { state in
                        // Cancellation checked under the lock: a cancellation handler that ran before found no waiter.
                        if state.head > position || Task.isCancelled { return state.head }
                        state.waiters[id] = Waiter(beyond: position, continuation: continuation)
                        return nil
                    }
                    if let immediate {
                        continuation.resume(returning: immediate)
                        return
                    }
                    group.addTask { await self.expire(id, after: timeout) }
                }
            } onCancel: {
                expire(id)
            }
            group.cancelAll()
            return woken
        }
    }

    /// Ends wait `id` after `timeout`, unless cancelled first (the wait ended).
    private func expire(_ id: UInt64, after timeout: Duration) async {
        runningTimeouts.add(1, ordering: .relaxed)
        defer { runningTimeouts.subtract(1, ordering: .relaxed) }
        do {
            try await Task.sleep(for: timeout)
        } catch {
            return
        }
        expire(id)
    }

    private func expire(_ id: UInt64) {
        let expired: (CheckedContinuation<Position, Never>, Position)? = state.withLock { state in
            guard let waiter = state.waiters.removeValue(forKey: id) else { return nil }
            return (waiter.continuation, state.head)
        }
        if let (continuation, head) = expired { continuation.resume(returning: head) }
    }
}
