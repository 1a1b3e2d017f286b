@testable import FluxGateway
import FluxTesting
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

/// The gate reads a connection only while its answers can be written and few of its requests wait for one.
@Suite struct PipelinedRequestGateTests {
    func makeChannel() throws -> (EmbeddedChannel, PipelinedRequestGate, ReadCountingHandler) {
        let channel = EmbeddedChannel()
        let counter = ReadCountingHandler()
        let gate = PipelinedRequestGate()
        try channel.pipeline.syncOperations.addHandler(counter)
        try channel.pipeline.syncOperations.addHandler(gate)
        return (channel, gate, counter)
    }

    func request(_ channel: EmbeddedChannel) throws {
        try channel.writeInbound(HTTPServerRequestPart.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: "/events")))
        try channel.writeInbound(HTTPServerRequestPart.end(nil))
    }

    func answer(_ channel: EmbeddedChannel) throws {
        try channel.writeOutbound(HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: .ok)))
        try channel.writeOutbound(HTTPServerResponsePart.end(nil))
    }

    @Test func readsStopPastTheUnansweredLimitAndResumeWithAnswers() throws {
        let (channel, gate, counter) = try makeChannel()
        for _ in 0..<PipelinedRequestGate.maximumUnanswered { try request(channel) }
        channel.read()
        #expect(counter.reads == 1, "at the limit a read still goes out")
        try request(channel)
        try request(channel)
        channel.read()
        #expect(counter.reads == 1 && gate.readHeld, "past the limit the read is held")
        try answer(channel)
        #expect(counter.reads == 1, "still past the limit after one answer")
        try answer(channel)
        #expect(counter.reads == 2 && !gate.readHeld, "an answer that brings it back to the limit releases the read")
        _ = try channel.finish()
    }

    @Test func readsStopWhileTheChannelIsNotWritable() throws {
        let (channel, gate, counter) = try makeChannel()
        channel.isWritable = false
        channel.read()
        #expect(counter.reads == 0 && gate.readHeld)
        channel.isWritable = true
        channel.pipeline.fireChannelWritabilityChanged()
        #expect(counter.reads == 1 && !gate.readHeld)
        _ = try channel.finish()
    }

    @Test func anAnswerWithoutARequestDoesNotUnbalanceTheCount() throws {
        let (channel, gate, _) = try makeChannel()
        try answer(channel)  // a 408 before any request arrived
        #expect(gate.unanswered == 0)
        try request(channel)
        #expect(gate.unanswered == 1)
        _ = try channel.finish()
    }
}
