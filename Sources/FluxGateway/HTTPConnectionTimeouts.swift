/// The deadlines of one HTTP/1.1 connection as a value type: an event goes in with the time it happened, one
/// ``Action`` comes out, and ``nextDeadline`` tells the caller when to call ``timerFired(now:)``.
///
/// - A new connection has `requestTimeout` to send its first request head, and a request's body has
///   `requestTimeout` from each piece (the head, a chunk) to the next: else `408` and the connection closes
///   (a client that trickles its request in, slowloris, holds a connection no longer than that).
/// - Between requests a kept-alive connection may sit idle for `idleTimeout`: then it closes without an answer
///   (RFC 9112 §9.8).
/// - While a whole request is answered nothing is timed: a long-poll may wait minutes, a stream run for hours.
/// - After the final answer our side closes, and the client has `lingerTime` to read it and close its own before
///   the connection closes: closing at once with its unread bytes in our socket would reset the connection and
///   lose the answer.
///
/// Time is an input: ``HTTPServerHandler`` passes its event loop's time and keeps one timer at ``nextDeadline``;
/// tests pass instants of their own.
struct HTTPConnectionTimeouts<Instant: InstantProtocol> where Instant.Duration == Duration {
    /// What the caller must do after an event.
    enum Action {
        /// Nothing.
        case none
        /// The request did not arrive in time: answer `408` and close after the answer.
        case answerRequestTimeout
        /// The final answer is written: close our side (the client reads it, then closes its own).
        case closeOutput
        /// Close the connection now (idle between requests, or the client did not close after the final answer).
        case closeConnection
    }

    /// The parts of a request, as they arrive.
    enum RequestPart {
        case head, body, end
    }

    enum State {
        /// Not connected yet.
        case inactive
        /// The first request's head must come by `deadline` (else `408`).
        case awaitingFirstRequest(deadline: Instant)
        /// Kept alive between requests: the next head must come by `deadline`, else the connection closes.
        case idle(deadline: Instant)
        /// A request's body is coming: its next piece must come by `deadline` (else `408`).
        case receivingBody(deadline: Instant)
        /// A whole request is being answered, or waits for the client to read earlier answers: no deadline.
        case responding
        /// The final answer is being written; the connection closes after it.
        case closing
        /// Our side is closed after the final answer; the client has until `deadline` to close its own.
        case lingering(deadline: Instant)
        /// The connection is closed.
        case closed
    }

    /// How long a request may take to arrive, from the connection's start to its head and from piece to piece.
    let requestTimeout: Duration
    /// How long a kept-alive connection may wait for its next request.
    let idleTimeout: Duration
    /// How long the client has to close after our final answer.
    let lingerTime: Duration
    private(set) var state = State.inactive
    /// The final answer was sent: what the client still sends is dropped (and its errors with it).
    private(set) var sentFinalResponse = false

    init(requestTimeout: Duration, idleTimeout: Duration, lingerTime: Duration = .seconds(2)) {
        self.requestTimeout = requestTimeout
        self.idleTimeout = idleTimeout
        self.lingerTime = lingerTime
    }

    /// When the caller must next call ``timerFired(now:)``; `nil` when no timer is needed.
    var nextDeadline: Instant? {
        switch state {
        case .awaitingFirstRequest(let deadline), .idle(let deadline), .receivingBody(let deadline), .lingering(let deadline):
            return deadline
        case .inactive, .responding, .closing, .closed:
            return nil
        }
    }

    // MARK: Events

    /// The connection is up: its first request head must come within `requestTimeout`.
    mutating func connectionActive(now: Instant) -> Action {
        guard case .inactive = state else { return .none }
        state = .awaitingFirstRequest(deadline: now.advanced(by: requestTimeout))
        return .none
    }

    /// A part of a request arrived (the decoder hands over a head only once it is whole). The head and each piece
    /// of the body give the next part `requestTimeout`; once the request is whole, nothing is timed while it is
    /// answered. Parts out of turn change nothing.
    mutating func received(_ part: RequestPart, now: Instant) -> Action {
        switch (part, state) {
        case (.head, .awaitingFirstRequest), (.head, .idle), (.body, .receivingBody):
            state = .receivingBody(deadline: now.advanced(by: requestTimeout))
        case (.end, .receivingBody):
            state = .responding
        default:
            break
        }
        return .none
    }

    /// An answer that keeps the connection alive is going out: the next request must come within `idleTimeout`.
    /// (A request the client pipelined behind it may arrive while it is written: that one's head moves on from here.)
    mutating func responseSent(now: Instant) -> Action {
        if case .responding = state {
            state = .idle(deadline: now.advanced(by: idleTimeout))
        }
        return .none
    }

    /// The final answer is going out (a refusal, a `408`, `Connection: close`, a server that stops): no more
    /// deadlines for requests.
    mutating func finalResponseSent() -> Action {
        sentFinalResponse = true
        switch state {
        case .lingering, .closed:
            break
        default:
            state = .closing
        }
        return .none
    }

    /// The final answer is written (or failed to be): close our side and give the client `lingerTime` to close its own.
    mutating func finalResponseWritten(now: Instant) -> Action {
        guard case .closing = state else { return .none }
        state = .lingering(deadline: now.advanced(by: lingerTime))
        return .closeOutput
    }

    /// The deadline from ``nextDeadline`` passed.
    mutating func timerFired(now: Instant) -> Action {
        switch state {
        case .awaitingFirstRequest(let deadline), .receivingBody(let deadline):
            guard now >= deadline else { return .none }
            state = .closing
            return .answerRequestTimeout
        case .idle(let deadline), .lingering(let deadline):
            guard now >= deadline else { return .none }
            state = .closed
            return .closeConnection
        case .inactive, .responding, .closing, .closed:
            return .none
        }
    }

    /// The connection closed (by either side), or its HTTP handlers left it: nothing more is timed.
    mutating func connectionClosed() -> Action {
        state = .closed
        return .none
    }
}
