import NIOCore

/// The one task a channel handler keeps scheduled at its state machine's next deadline.
///
/// Call ``schedule(at:on:_:)`` after every event with the machine's next deadline: the task moves when the
/// deadline does and is cancelled when there is none. Use it on the channel's event loop only.
public final class EventLoopDeadlineTimer {
    private var task: Scheduled<Void>?
    /// When the scheduled task runs; `nil` when none is scheduled.
    public private(set) var deadline: EventLoopInstant?

    /// A timer with nothing scheduled.
    public init() {}

    /// Keeps one task scheduled at `deadline` that calls `fire` (none when `deadline` is `nil`). On a hot path, compare
    /// with ``deadline`` first: building the `fire` closure allocates even when nothing moves.
    public func schedule(at deadline: EventLoopInstant?, on eventLoop: any EventLoop, _ fire: @escaping () -> Void) {
        guard deadline != self.deadline else { return }
        cancel()
        guard let deadline else { return }
        self.deadline = deadline
        task = eventLoop.assumeIsolated().scheduleTask(deadline: deadline.deadline) { [self] in
            task = nil
            self.deadline = nil
            fire()
        }
    }

    /// Cancels the scheduled task, if any.
    public func cancel() {
        task?.cancel()
        task = nil
        deadline = nil
    }
}

@available(*, unavailable)
extension EventLoopDeadlineTimer: Sendable {}
