import NIOCore
import NIOHTTP1

/// Bounds what one HTTP connection can make the gateway hold: the connection is not read while its unsent answers
/// fill the channel past its write high-water mark, nor while more than ``maximumUnanswered`` of its requests wait
/// for an answer. A client that pipelines requests and never reads the answers then meets TCP backpressure (its
/// own send buffer fills) instead of growing the gateway's memory.
///
/// It sits between the request decoder and NIO's pipelining handler, which forwards one request at a time but
/// buffers every request it is given; the ``HTTPServerHandler`` after it starts no answer while the channel is
/// not writable, so at most one answer waits beyond the high-water mark.
final class PipelinedRequestGate: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// Requests read and not yet answered before the connection stops being read.
    static let maximumUnanswered = 16

    /// Requests whose head was read and whose answer has not ended.
    private(set) var unanswered = 0
    /// A `read` was held back; it is passed on once the connection may be read again.
    private(set) var readHeld = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head = Self.unwrapInboundIn(data) { unanswered += 1 }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let isEnd: Bool
        if case .end = Self.unwrapOutboundIn(data) { isEnd = true } else { isEnd = false }
        context.write(data, promise: promise)
        if isEnd {
            // An answer written before its request arrived whole (408) ends nothing that was counted.
            unanswered = max(0, unanswered - 1)
            releaseHeldRead(context: context)
        }
    }

    func read(context: ChannelHandlerContext) {
        if mayRead(context) {
            context.read()
        } else {
            readHeld = true
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        releaseHeldRead(context: context)
        context.fireChannelWritabilityChanged()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        // The connection changes hands (a WebSocket upgrade): whoever reads it next decides.
        if readHeld {
            readHeld = false
            context.read()
        }
    }

    private func mayRead(_ context: ChannelHandlerContext) -> Bool {
        context.channel.isWritable && unanswered <= Self.maximumUnanswered
    }

    private func releaseHeldRead(context: ChannelHandlerContext) {
        guard readHeld, mayRead(context) else { return }
        readHeld = false
        context.read()
    }
}
