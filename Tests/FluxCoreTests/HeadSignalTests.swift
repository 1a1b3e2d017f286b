import FluxCore
import Testing

@Suite struct HeadSignalTests {
    @Test func wakesWaitersOnPublish() async {
        let signal = HeadSignal()
        async let woken = signal.wait(beyond: .start, timeout: .seconds(30))
        try? await Task.sleep(for: .milliseconds(20))
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
        try? await Task.sleep(for: .milliseconds(20))
        task.cancel()
        #expect(await task.value == .start)
    }
}
