import NIOCore

/// An event loop's clock reading as an `InstantProtocol` value, so ``WebSocketConnectionStateMachine`` runs on
/// the loop's time (virtual time under `EmbeddedEventLoop`, monotonic time otherwise).
struct WebSocketEventLoopInstant: InstantProtocol, Hashable, Sendable {
    var deadline: NIODeadline

    init(_ deadline: NIODeadline) {
        self.deadline = deadline
    }

    func advanced(by duration: Duration) -> WebSocketEventLoopInstant {
        WebSocketEventLoopInstant(deadline + TimeAmount(duration))
    }

    func duration(to other: WebSocketEventLoopInstant) -> Duration {
        Duration(other.deadline - deadline)
    }

    static func < (lhs: WebSocketEventLoopInstant, rhs: WebSocketEventLoopInstant) -> Bool {
        lhs.deadline < rhs.deadline
    }
}
