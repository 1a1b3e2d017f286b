import NIOCore

/// A NIO event loop as a Swift task executor (SE-0417): a task started with it as its executor preference runs on
/// the loop's thread, and so does every nonisolated async function and default actor it calls, until it awaits
/// something that runs elsewhere (a database thread), after which it comes back to the loop.
///
/// The gateway answers each request in such a task, on the loop of the request's connection: the request arrives
/// there and its answer is written there, so a request that needs no other thread costs no thread switch. With
/// plain `Task {}` every request cost two (to the cooperative pool and back through `EventLoop.execute`), the
/// largest part of a small request's round trip on a busy machine (`fluxgate-bench legacy`). One per connection.
final class EventLoopTaskExecutor: TaskExecutor, Sendable {
    let eventLoop: any EventLoop

    init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        eventLoop.execute {
            job.runSynchronously(on: executor)
        }
    }
}
