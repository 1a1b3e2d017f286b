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

    public init(head: Position = .start) {
        state = Mutex(State(head: head))
    }

    /// The last published head.
    public var head: Position { state.withLock { $0.head } }

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
    public func wait(beyond position: Position, timeout: Duration) async -> Position {
        let current = head
        if current > position || timeout <= .zero || Task.isCancelled { return current }
        let id = state.withLock { state -> UInt64 in
            state.nextID += 1
            return state.nextID
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Position, Never>) in
                let immediate: Position? = state.withLock { state in
                    if state.head > position { return state.head }
                    state.waiters[id] = Waiter(beyond: position, continuation: continuation)
                    return nil
                }
                if let immediate {
                    continuation.resume(returning: immediate)
                    return
                }
                Task { [weak self] in
                    try? await Task.sleep(for: timeout)
                    self?.expire(id)
                }
            }
        } onCancel: {
            expire(id)
        }
    }

    private func expire(_ id: UInt64) {
        let expired: (CheckedContinuation<Position, Never>, Position)? = state.withLock { state in
            guard let waiter = state.waiters.removeValue(forKey: id) else { return nil }
            return (waiter.continuation, state.head)
        }
        if let (continuation, head) = expired { continuation.resume(returning: head) }
    }
}
