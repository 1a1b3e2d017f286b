import FluxCore
import NIOCore

extension EventLoop {
    /// Runs `task` on this loop when `deadline` of the continuous clock comes (at once when it has passed): what a
    /// connection does when its access token expires.
    func scheduleTask(at deadline: ContinuousClock.Instant, _ task: @escaping @Sendable () -> Void) -> Scheduled<Void> {
        scheduleTask(in: .milliseconds(max(0, ContinuousClock.now.duration(to: deadline).wholeMilliseconds)), task)
    }
}
