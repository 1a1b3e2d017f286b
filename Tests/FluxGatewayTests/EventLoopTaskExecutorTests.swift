import NIOCore
import NIOPosix
import Testing

@testable import FluxGateway

/// A task with an event loop as its executor preference runs on that loop, comes back to it after awaiting work
/// elsewhere, and runs default actors it calls there too.
@Suite struct EventLoopTaskExecutorTests {
    actor Counter {
        var value = 0
        func increment(on loop: any EventLoop) -> (Int, Bool) {
            value += 1
            return (value, loop.inEventLoop)
        }
    }

    @Test func tasksRunOnTheLoopAndComeBackToIt() async throws {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let executor = EventLoopTaskExecutor(loop)
        let counter = Counter()
        let observed = await Task(executorPreference: executor) { () -> [Bool] in
            var onLoop = [loop.inEventLoop]
            // Work on another thread, then back.
            try? await Task.sleep(for: .milliseconds(5))
            onLoop.append(loop.inEventLoop)
            let (_, actorOnLoop) = await counter.increment(on: loop)
            onLoop.append(actorOnLoop)
            onLoop.append(loop.inEventLoop)
            return onLoop
        }.value
        #expect(observed == [true, true, true, true])
        #expect(await counter.value == 1)
    }

    @Test func manyTasksOnOneLoopAllFinish() async throws {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let executor = EventLoopTaskExecutor(loop)
        let total = await withTaskGroup(of: Int.self) { group in
            for index in 0..<1000 {
                group.addTask(executorPreference: executor) {
                    await Task.yield()
                    return index
                }
            }
            return await group.reduce(0, +)
        }
        #expect(total == 999 * 1000 / 2)
    }
}
