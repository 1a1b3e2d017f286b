import NIOCore

/// Counts the `read` calls that reach the front of a pipeline, to check that a handler holds reads back (put it
/// first, ahead of the handler under test).
public final class ReadCountingHandler: ChannelOutboundHandler {
    public typealias OutboundIn = NIOAny

    /// `read` calls passed on so far.
    public private(set) var reads = 0

    public init() {}

    public func read(context: ChannelHandlerContext) {
        reads += 1
        context.read()
    }
}
