import FluxWebSocket
import NIOCore
import NIOEmbedded
import Testing

@testable import FluxGateway

/// The writer's bounds, on an embedded channel whose writes complete only when the test says the socket took them.
@Suite struct BoundedOutboundWriterTests {
    /// Holds every write's promise until `complete(_:)`: bytes queued but not yet "on the wire".
    final class HeldWrites: ChannelOutboundHandler {
        typealias OutboundIn = Any
        var promises: [EventLoopPromise<Void>?] = []
        var written = 0

        func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
            written += 1
            promises.append(promise)
        }

        func complete(_ count: Int) {
            for promise in promises.prefix(count) { promise?.succeed(()) }
            promises.removeFirst(min(count, promises.count))
        }

        func failAll() {
            for promise in promises { promise?.fail(ChannelError.ioOnClosedChannel) }
            promises.removeAll()
        }
    }

    static func makeWriter(highWater: Int = 1000, framing: BoundedOutboundWriter.Framing = .webSocketFrames) throws -> (BoundedOutboundWriter, HeldWrites, EmbeddedChannel) {
        let channel = EmbeddedChannel()
        let held = HeldWrites()
        try channel.pipeline.syncOperations.addHandler(held)
        let writer = BoundedOutboundWriter(channel: channel, framing: framing, highWater: highWater, lowWater: highWater / 4, metrics: GatewayMetrics())
        return (writer, held, channel)
    }

    static func bytes(_ count: Int) -> ByteBuffer { ByteBuffer(repeating: 0x61, count: count) }

    @Test func offersAreRefusedOnceTheBacklogReachesTheHighWaterMark() throws {
        let (writer, held, _) = try Self.makeWriter()
        #expect(writer.offer(Self.bytes(400)))
        #expect(writer.offer(Self.bytes(400)))
        #expect(writer.offer(Self.bytes(400)), "under the mark when offered: accepted whole")
        #expect(writer.pendingBytes == 1200)
        #expect(!writer.offer(Self.bytes(1)), "at or past the mark: refused, nothing queued")
        #expect(held.written == 3)
        held.complete(2)
        #expect(writer.pendingBytes == 400)
        #expect(writer.offer(Self.bytes(1)))
    }

    @Test func anAwaitedWriteWaitsForTheBacklogToDrainBelowTheLowWaterMark() async throws {
        let (writer, held, _) = try Self.makeWriter()
        #expect(writer.offer(Self.bytes(1000)))
        let waiting = Task { try await writer.write(Self.bytes(10)) }
        // The write cannot go before the socket took the backlog: failing the connection releases it with the error.
        writer.fail(ChannelError.ioOnClosedChannel)
        await #expect(throws: ChannelError.ioOnClosedChannel) { try await waiting.value }
        #expect(held.written == 1)
        #expect(!writer.offer(Self.bytes(1)), "a failed writer refuses offers")
    }

    @Test func aFailedSocketWriteFailsTheWriter() throws {
        let (writer, held, _) = try Self.makeWriter()
        #expect(writer.offer(Self.bytes(10)))
        held.failAll()
        #expect(writer.pendingBytes == 0)
        #expect(!writer.offer(Self.bytes(10)))
    }

    /// WebSocket framing hands the connection handler encoded frames; HTTP framing, body parts.
    @Test func framingDecidesWhatTravelsDownThePipeline() throws {
        let channel = EmbeddedChannel()
        let writer = BoundedOutboundWriter(channel: channel, framing: .webSocketFrames, highWater: 1000, lowWater: 250)
        #expect(writer.offer(Self.bytes(3)))
        guard case .encodedFrame(let frame) = try channel.readOutbound(as: WebSocketOutboundMessage.self) else {
            Issue.record("not an encoded frame")
            return
        }
        #expect(frame == Self.bytes(3))
    }
}
