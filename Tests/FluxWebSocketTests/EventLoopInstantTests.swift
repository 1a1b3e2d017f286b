@testable import FluxWebSocket
import NIOCore
import Testing

@Suite struct EventLoopInstantTests {
    @Test func arithmeticFollowsTheDeadline() {
        let start = EventLoopInstant(.uptimeNanoseconds(1_000))
        let later = start.advanced(by: .milliseconds(5))
        #expect(later.deadline == .uptimeNanoseconds(5_001_000))
        #expect(start.duration(to: later) == .milliseconds(5))
        #expect(start < later)
    }
}
