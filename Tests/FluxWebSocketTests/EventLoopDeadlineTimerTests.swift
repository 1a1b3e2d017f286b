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

@Suite struct EventLoopDeadlineTimerLazinessTests {
    @Test func aDeadlineMovedLaterKeepsItsTaskAndFiresOnceAtTheLatestDeadline() {
        let loop = EmbeddedEventLoop()
        let timer = EventLoopDeadlineTimer()
        let start = EventLoopInstant.now(on: loop)
        var fired: [NIODeadline] = []
        // An idle deadline moved on by every request, a second apart, 100 times.
        for second in 0..<100 {
            timer.schedule(at: start.advanced(by: .seconds(Int64(second) + 10)), on: loop) { fired.append(loop.now) }
            loop.advanceTime(by: .seconds(1))
        }
        #expect(fired.isEmpty, "every deadline moved before it passed")
        loop.advanceTime(by: .seconds(8))
        #expect(fired.isEmpty)
        loop.advanceTime(by: .seconds(1))
        #expect(fired == [start.advanced(by: .seconds(109)).deadline], "once, at the last deadline, not at an earlier one")
    }

    @Test func aDeadlineMovedEarlierFiresAtTheEarlierOne() {
        let loop = EmbeddedEventLoop()
        let timer = EventLoopDeadlineTimer()
        let start = EventLoopInstant.now(on: loop)
        var fired: [String] = []
        timer.schedule(at: start.advanced(by: .seconds(60)), on: loop) { fired.append("idle") }
        timer.schedule(at: start.advanced(by: .seconds(5)), on: loop) { fired.append("request") }
        loop.advanceTime(by: .seconds(5))
        #expect(fired == ["request"], "the newest closure, at the earlier deadline")
        loop.advanceTime(by: .seconds(120))
        #expect(fired == ["request"], "and only once")
    }

    @Test func noDeadlineFiresNothingAndCancelDropsTheTask() {
        let loop = EmbeddedEventLoop()
        let timer = EventLoopDeadlineTimer()
        let start = EventLoopInstant.now(on: loop)
        final class Owner {}
        weak var released: Owner?
        var fired = 0
        do {
            let owner = Owner()
            released = owner
            timer.schedule(at: start.advanced(by: .seconds(5)), on: loop) { _ = owner; fired += 1 }
        }
        timer.schedule(at: nil, on: loop) { fired += 1 }
        #expect(released == nil, "a nil deadline lets go of the closure")
        loop.advanceTime(by: .seconds(10))
        #expect(fired == 0)
        timer.schedule(at: EventLoopInstant.now(on: loop).advanced(by: .seconds(5)), on: loop) { fired += 1 }
        timer.cancel()
        loop.advanceTime(by: .seconds(10))
        #expect(fired == 0, "cancelled")
        #expect(timer.deadline == nil)
    }
}
