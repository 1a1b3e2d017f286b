import NIOCore

/// An event loop's clock reading as an `InstantProtocol` value, so a connection's state machine runs on the loop's
/// time (virtual time under `EmbeddedEventLoop` and `NIOAsyncTestingEventLoop`, monotonic time otherwise).
///
/// ``WebSocketConnectionStateMachine`` runs on it in ``WebSocketConnectionHandler``, and so do the gateway's HTTP
/// connection timeouts.
public struct EventLoopInstant: InstantProtocol, Hashable, Sendable {
    /// The loop's reading.
    public var deadline: NIODeadline

    /// The instant of the loop's reading `deadline`.
    public init(_ deadline: NIODeadline) {
        self.deadline = deadline
    }

    /// The loop's time now (`EventLoop.now`: virtual on the testing loops).
    public static func now(on eventLoop: any EventLoop) -> EventLoopInstant {
        EventLoopInstant(eventLoop.now)
    }

    /// The instant `duration` later.
    public func advanced(by duration: Duration) -> EventLoopInstant {
        EventLoopInstant(deadline + TimeAmount(duration))
    }

    /// How long from this instant to `other`.
    public func duration(to other: EventLoopInstant) -> Duration {
        Duration(other.deadline - deadline)
    }

    /// Whether `lhs` comes before `rhs`.
    public static func < (lhs: EventLoopInstant, rhs: EventLoopInstant) -> Bool {
        lhs.deadline < rhs.deadline
    }
}
