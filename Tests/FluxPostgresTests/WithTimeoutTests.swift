@testable import FluxPostgres
import FluxCore
import Synchronization
import Testing

/// A wait that only `open()` ends, whatever cancellation says: what a query does whose connection was closed under it.
private final class Gate: Sendable {
    private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func wait() async {
        await withCheckedContinuation { continuation in
            let isOpen = state.withLock { state in
                if !state.open { state.waiters.append(continuation) }
                return state.open
            }
            if isOpen { continuation.resume() }
        }
    }

    func open() {
        let waiters = state.withLock { state in
            state.open = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }
}

/// `withTimeout` and `awaitEnd(of:within:)` bound the waits of the PostgreSQL store (its reads, appends and
/// `close()`), even for work that ignores cancellation.
@Suite struct WithTimeoutTests {
    @Test func aTaskThatIgnoresCancellationIsLeftBehindAtTheLimit() async {
        let gate = Gate()
        let stuck = Task { await gate.wait() }
        #expect(await awaitEnd(of: stuck, within: .milliseconds(100)) == false, "the wait returned at its limit")
        gate.open()
        #expect(await awaitEnd(of: stuck, within: .seconds(60)), "and the task, once free, ends")
    }

    @Test func aTaskThatEndsIsAwaitedToItsEnd() async {
        let ended = Mutex(false)
        let task = Task {
            try? await Task.sleep(for: .milliseconds(20))
            ended.withLock { $0 = true }
        }
        #expect(await awaitEnd(of: task, within: .seconds(60)))
        #expect(ended.withLock { $0 })
    }

    @Test func workThatIgnoresCancellationFailsAsStoreUnavailableAtTheLimit() async {
        let gate = Gate()
        await #expect {
            try await withTimeout(.milliseconds(100), "waiting for the gate") { await gate.wait() }
        } throws: { error in
            (error as? StoreError)?.code == .storeUnavailable && "\(error)".contains("waiting for the gate")
        }
        gate.open()
    }
}
