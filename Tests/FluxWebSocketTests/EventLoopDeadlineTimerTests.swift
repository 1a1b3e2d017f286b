@testable import FluxWebSocket
import NIOCore
import NIOEmbedded
import Testing

@Suite struct EventLoopDeadlineTimerTests {
    @Test func theTimerKeepsOneTaskAtTheLatestDeadline() {
        let loop = EmbeddedEventLoop()
        let timer = EventLoopDeadlineTimer()
        let start = EventLoopInstant.now(on: loop)
        var fired: [NIODeadline] = []
        let fire = { fired.append(loop.now) }
        timer.schedule(at: start.advanced(by: .seconds(5)), on: loop, fire)
        timer.schedule(at: start.advanced(by: .seconds(5)), on: loop, fire)
        loop.advanceTime(by: .milliseconds(4999))
        #expect(fired.isEmpty)
        timer.schedule(at: start.advanced(by: .seconds(10)), on: loop, fire)
        loop.advanceTime(by: .seconds(1))
        #expect(fired.isEmpty, "moved: not at the old deadline")
        loop.advanceTime(by: .seconds(5))
        #expect(fired == [start.advanced(by: .seconds(10)).deadline], "once, at the new one")
        #expect(timer.deadline == nil)
        timer.schedule(at: EventLoopInstant.now(on: loop).advanced(by: .seconds(1)), on: loop, fire)
        timer.schedule(at: nil, on: loop, fire)
        loop.advanceTime(by: .seconds(60))
        #expect(fired.count == 1, "no deadline, no task")
    }
}
