import NIOCore

/// One timer for a connection's deadlines, on its event loop, made for deadlines that move on every message: a
/// deadline that moves *later* keeps the task already scheduled, which finds the new deadline when it runs and
/// schedules itself again for it. So a connection whose idle deadline moves with each request schedules a task
/// about once per timeout, not once per request (each `scheduleTask` and `cancel` allocates and reorders the
/// loop's queue). A deadline moved earlier is scheduled at once; ``cancel()`` drops the task and what it holds.
public final class EventLoopDeadlineTimer {
    private var task: Scheduled<Void>?
    /// When the scheduled task runs: never after ``deadline``.
    private var taskRunsAt: EventLoopInstant?
    private var fire: (() -> Void)?
    /// When `fire` is due; `nil` when nothing is (a task may still be scheduled: it then does nothing).
    public private(set) var deadline: EventLoopInstant?

    /// A timer with nothing scheduled.
    public init() {}

    /// Calls `fire` once `deadline` has passed (never, when `deadline` is `nil`), replacing any earlier deadline and
    /// closure. On a hot path, compare with ``deadline`` first: building the `fire` closure allocates even when
    /// nothing moves. A `nil` deadline leaves the task to run and find nothing due; ``cancel()`` when the
    /// connection ends, so that no task outlives it.
    public func schedule(at deadline: EventLoopInstant?, on eventLoop: any EventLoop, _ fire: @escaping () -> Void) {
        guard deadline != self.deadline else { return }
        self.deadline = deadline
        guard let deadline else {
            self.fire = nil
            return
        }
        self.fire = fire
        if let taskRunsAt, taskRunsAt <= deadline { return }  // it runs first, and moves itself on
        task?.cancel()
        arm(at: deadline, on: eventLoop)
    }

    /// Cancels the scheduled task, if any, and forgets the deadline and its closure.
    public func cancel() {
        task?.cancel()
        task = nil
        taskRunsAt = nil
        deadline = nil
        fire = nil
    }

    private func arm(at instant: EventLoopInstant, on eventLoop: any EventLoop) {
        taskRunsAt = instant
        task = eventLoop.assumeIsolated().scheduleTask(deadline: instant.deadline) { [self] in
            task = nil
            taskRunsAt = nil
            guard let deadline else { return }
            if EventLoopInstant.now(on: eventLoop) < deadline {
                arm(at: deadline, on: eventLoop)  // the deadline moved later since this task was scheduled
                return
            }
            let fire = self.fire
            self.deadline = nil
            self.fire = nil
            fire?()
        }
    }
}

@available(*, unavailable)
extension EventLoopDeadlineTimer: Sendable {}
