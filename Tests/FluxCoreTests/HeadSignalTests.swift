@testable import FluxCore
import Testing

@Suite struct HeadSignalTests {
    /// Returns once `waiters` waits are registered and their timeout tasks running.
    func settled(_ signal: HeadSignal, waiters: Int) async {
        while signal.waiterCount < waiters || signal.timeoutTaskCount < waiters { await Task.yield() }
    }

    @Test func wakesWaitersOnPublish() async {
        let signal = HeadSignal()
        async let woken = signal.wait(beyond: .start, timeout: .seconds(30))
        await settled(signal, waiters: 1)
        signal.publish(Position(7))
        #expect(await woken == Position(7))
    }

    @Test func ignoresOlderHeads() {
        let signal = HeadSignal(head: Position(5))
        signal.publish(Position(3))
        #expect(signal.head == Position(5))
    }

    @Test func cancellationEndsTheWait() async {
        let signal = HeadSignal()
        let task = Task { await signal.wait(beyond: .start, timeout: .seconds(60)) }
        await settled(signal, waiters: 1)
        task.cancel()
        #expect(await task.value == .start)
        #expect(signal.waiterCount == 0)
    }

    @Test func aWaitEndsAtItsTimeoutWithTheCurrentHead() async {
        let signal = HeadSignal(head: Position(2))
        #expect(await signal.wait(beyond: Position(2), timeout: .milliseconds(20)) == Position(2))
        #expect(signal.waiterCount == 0 && signal.timeoutTaskCount == 0)
    }

    /// A wait's timeout task ends with the wait: an hour-long timeout does not outlive a wait the head ended.
    @Test func waitsThatEndEarlyLeaveNoTimeoutTask() async {
        let signal = HeadSignal()
        let waits = 500
        await withTaskGroup(of: Position.self) { group in
            for _ in 0..<waits {
                group.addTask { await signal.wait(beyond: .start, timeout: .seconds(3600)) }
            }
            await settled(signal, waiters: waits)
            #expect(signal.timeoutTaskCount == waits, "one timeout task per wait, while it waits")
            signal.publish(Position(1))
            for await woken in group { #expect(woken == Position(1)) }
        }
        #expect(signal.waiterCount == 0)
        #expect(signal.timeoutTaskCount == 0, "the timeouts were cancelled with their waits")
    }

    @Test func aCancelledWaitLeavesNoTimeoutTask() async {
        let signal = HeadSignal()
        let waits = (0..<100).map { _ in Task { await signal.wait(beyond: .start, timeout: .seconds(3600)) } }
        await settled(signal, waiters: waits.count)
        for wait in waits { wait.cancel() }
        for wait in waits { #expect(await wait.value == .start) }
        #expect(signal.waiterCount == 0)
        #expect(signal.timeoutTaskCount == 0, "the timeouts were cancelled with their callers")
    }
}
