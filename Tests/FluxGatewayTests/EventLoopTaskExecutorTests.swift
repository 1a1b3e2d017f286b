import NIOCore
import NIOHTTP1
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

/// Which requests are answered on their connection's event loop: only cheap, bounded ones.
@Suite struct AnswersOnEventLoopTests {
    func request(_ method: HTTPMethod, _ uri: String) -> GatewayRequest {
        GatewayRequest(method: method, version: .http1_1, uri: uri, headers: [:], body: ByteBuffer())
    }

    @Test func oneEventAndHealthOnlyOthersOnThePool() {
        #expect(GatewayRouter.answersOnEventLoop(request(.GET, "/events/6d0c-1")))
        #expect(GatewayRouter.answersOnEventLoop(request(.GET, "/events/6d0c-1?envelope=true")))
        #expect(GatewayRouter.answersOnEventLoop(request(.GET, "/health")))
        #expect(GatewayRouter.answersOnEventLoop(request(.GET, "/events?offset=40")), "the original consumer's page")
        #expect(GatewayRouter.answersOnEventLoop(request(.GET, "/events?offset=40&limit=32")))
        for (method, uri) in [
            (HTTPMethod.GET, "/events?offset=0&limit=33"), (.GET, "/events?offset=0&limit=x"), (.GET, "/events?offset=0&event_type=a"),
            (.GET, "/events?offset=0&wait=5"), (.GET, "/events?after=0"), (.GET, "/events"),
            (.GET, "/events?after=0&limit=1000&embed=payload"), (.GET, "/events/subscribe"),
            (.POST, "/streams/acc-1"), (.GET, "/streams/acc-1"), (.GET, "/streams?prefix=a"), (.GET, "/metrics"), (.GET, "/"),
            (.POST, "/events/6d0c-1"), (.GET, "/events/%zz"),
        ] {
            #expect(!GatewayRouter.answersOnEventLoop(request(method, uri)), "\(method) \(uri)")
        }
    }
}
