@testable import FluxGateway
import Testing

/// The connection's deadlines on instants the test gives: no sleeping, no real clock.
@Suite struct HTTPConnectionTimeoutsTests {
    typealias Timeouts = HTTPConnectionTimeouts<ContinuousClock.Instant>

    static let t0 = ContinuousClock.now

    /// `seconds` after `t0`.
    func at(_ seconds: Double) -> ContinuousClock.Instant {
        Self.t0 + .milliseconds(Int64((seconds * 1000).rounded()))
    }

    /// A connection that came up at `t0`: 10 s for a request, 60 s idle, 2 s to linger.
    func connected() -> Timeouts {
        var timeouts = Timeouts(requestTimeout: .seconds(10), idleTimeout: .seconds(60), lingerTime: .seconds(2))
        #expect(timeouts.nextDeadline == nil, "nothing is timed before the connection is up")
        #expect(timeouts.connectionActive(now: Self.t0) == .none)
        return timeouts
    }

    /// Sends the final answer at `seconds`, expects the half-close and the linger deadline, and closes at it.
    func expectLingeringClose(_ timeouts: inout Timeouts, writtenAt seconds: Double) {
        #expect(timeouts.finalResponseSent() == .none)
        #expect(timeouts.nextDeadline == nil, "nothing is timed while the final answer is written")
        #expect(timeouts.sentFinalResponse)
        #expect(timeouts.finalResponseWritten(now: at(seconds)) == .closeOutput)
        #expect(timeouts.nextDeadline == at(seconds + 2), "the client has 2 s to close its side")
        #expect(timeouts.timerFired(now: at(seconds + 1.999)) == .none)
        #expect(timeouts.timerFired(now: at(seconds + 2)) == .closeConnection)
        #expect(timeouts.nextDeadline == nil)
    }

    @Test func aSilentConnectionGets408AtTheRequestTimeoutThenLingers() {
        var timeouts = connected()
        #expect(timeouts.nextDeadline == at(10))
        #expect(timeouts.timerFired(now: at(9.999)) == .none, "a timer that fires early changes nothing")
        #expect(timeouts.nextDeadline == at(10))
        #expect(timeouts.timerFired(now: at(10)) == .answerRequestTimeout)
        #expect(timeouts.nextDeadline == nil)
        #expect(timeouts.timerFired(now: at(100)) == .none, "one 408")
        expectLingeringClose(&timeouts, writtenAt: 10.01)
    }

    @Test func aHeadStartsTheBodyTimerAndEachPieceRestartsIt() {
        var timeouts = connected()
        #expect(timeouts.received(.head, now: at(9)) == .none)
        #expect(timeouts.nextDeadline == at(19), "the body has 10 s from the head")
        #expect(timeouts.timerFired(now: at(10)) == .none, "the first request's head came in time")
        #expect(timeouts.received(.body, now: at(18)) == .none)
        #expect(timeouts.nextDeadline == at(28), "and 10 s from each chunk")
        #expect(timeouts.timerFired(now: at(19)) == .none, "the head's deadline was moved by the chunk")
        #expect(timeouts.timerFired(now: at(28)) == .answerRequestTimeout, "a body that stops coming")
        #expect(timeouts.nextDeadline == nil)
    }

    @Test func aWholeRequestIsNotTimedWhileItIsAnswered() {
        // A long-poll may wait minutes, a stream run for hours: neither the request nor the idle timeout applies.
        var timeouts = connected()
        _ = timeouts.received(.head, now: at(1))
        #expect(timeouts.received(.end, now: at(1)) == .none)
        #expect(timeouts.nextDeadline == nil)
        #expect(timeouts.timerFired(now: at(3600)) == .none)
        #expect(timeouts.received(.body, now: at(3600)) == .none, "no body after the end")
        #expect(timeouts.nextDeadline == nil)
    }

    @Test func anAnswerStartsTheIdleTimerWhichClosesWithoutAnAnswer() {
        var timeouts = connected()
        _ = timeouts.received(.head, now: at(1))
        _ = timeouts.received(.end, now: at(1))
        #expect(timeouts.responseSent(now: at(5)) == .none)
        #expect(timeouts.nextDeadline == at(65), "kept alive: 60 s for the next request")
        #expect(timeouts.timerFired(now: at(64.999)) == .none)
        #expect(timeouts.timerFired(now: at(65)) == .closeConnection)
        #expect(timeouts.nextDeadline == nil)
        #expect(!timeouts.sentFinalResponse, "closed without an answer")
    }

    @Test func theNextHeadEndsTheIdleTimerAndStartsTheBodyTimer() {
        var timeouts = connected()
        _ = timeouts.received(.head, now: at(1))
        _ = timeouts.received(.end, now: at(1))
        _ = timeouts.responseSent(now: at(5))
        #expect(timeouts.received(.head, now: at(64)) == .none)
        #expect(timeouts.nextDeadline == at(74))
        #expect(timeouts.timerFired(now: at(65)) == .none, "the idle deadline is gone")
        _ = timeouts.received(.end, now: at(65))
        _ = timeouts.responseSent(now: at(70))
        #expect(timeouts.nextDeadline == at(130), "every answer starts the idle timer anew")
    }

    @Test func aRequestPipelinedBehindAnAnswerIsTimedFromItsHead() {
        // Writing an answer hands over the request the client pipelined behind it: its head (and its end, when it is
        // whole) arrive while the answer is written, after `responseSent`.
        var timeouts = connected()
        _ = timeouts.received(.head, now: at(1))
        _ = timeouts.received(.end, now: at(1))
        _ = timeouts.responseSent(now: at(2))
        _ = timeouts.received(.head, now: at(2))
        #expect(timeouts.nextDeadline == at(12))
        _ = timeouts.received(.end, now: at(2))
        #expect(timeouts.nextDeadline == nil, "answering it is not timed")
        #expect(timeouts.responseSent(now: at(2)) == .none)
        #expect(timeouts.nextDeadline == at(62))
        // An answer that is not a request's (nothing is being answered) starts no idle timer.
        _ = timeouts.received(.head, now: at(3))
        #expect(timeouts.responseSent(now: at(4)) == .none)
        #expect(timeouts.nextDeadline == at(13))
    }

    @Test func aRefusedRequestLingersAfterItsAnswer() {
        // 413, 431, 400, 501: the answer is final whatever was being timed.
        var timeouts = connected()
        _ = timeouts.received(.head, now: at(1))
        expectLingeringClose(&timeouts, writtenAt: 1.5)
    }

    @Test func aFinalAnswerAfterARequestLingers() {
        // `Connection: close`, a HEAD of a stream, or the server stopping: after the answer, the linger.
        var timeouts = connected()
        _ = timeouts.received(.head, now: at(1))
        _ = timeouts.received(.end, now: at(1))
        expectLingeringClose(&timeouts, writtenAt: 30)
        #expect(timeouts.finalResponseWritten(now: at(40)) == .none, "one half-close")
    }

    @Test func aClosedConnectionHasNoDeadlines() {
        var states: [Timeouts] = []
        var timeouts = connected()
        states.append(timeouts)
        _ = timeouts.received(.head, now: at(1))
        states.append(timeouts)
        _ = timeouts.received(.end, now: at(1))
        states.append(timeouts)
        _ = timeouts.responseSent(now: at(2))
        states.append(timeouts)
        _ = timeouts.finalResponseSent()
        states.append(timeouts)
        _ = timeouts.finalResponseWritten(now: at(3))
        states.append(timeouts)
        for var state in states {
            #expect(state.connectionClosed() == .none)
            #expect(state.nextDeadline == nil)
            #expect(state.timerFired(now: at(1000)) == .none)
            #expect(state.finalResponseWritten(now: at(1000)) == .none, "a write that completes after the close")
            _ = state.received(.head, now: at(1000))
            #expect(state.connectionActive(now: at(1000)) == .none)
            #expect(state.nextDeadline == nil)
        }
    }

    @Test func eventsOutOfTurnChangeNothing() {
        var timeouts = connected()
        #expect(timeouts.connectionActive(now: at(5)) == .none)
        #expect(timeouts.nextDeadline == at(10), "the connection came up once")
        _ = timeouts.received(.body, now: at(5))
        _ = timeouts.received(.end, now: at(5))
        _ = timeouts.responseSent(now: at(5))
        #expect(timeouts.nextDeadline == at(10), "no body, end or answer before a head")
        _ = timeouts.received(.head, now: at(6))
        _ = timeouts.received(.end, now: at(6))
        _ = timeouts.received(.head, now: at(7))
        #expect(timeouts.nextDeadline == nil, "a head while a request is answered waits its turn (the pipelining handler holds it)")
    }
}
