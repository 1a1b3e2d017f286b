import NIOCore

extension ChannelHandlerContext {
    /// Closes TCP after our Close frame without destroying it: sends FIN first (the server closes first,
    /// RFC 6455 §7.1.1), then reads and drops what the peer still sends until it closes too, at most `timeout`.
    ///
    /// Closing at once while the peer is still sending (failing the connection in the middle of its message, or a
    /// slow reader answering pings queued before our Close) leaves unread input or makes later input arrive at a
    /// closed socket; the kernel answers with a reset, and a reset makes the peer's stack drop our Close frame,
    /// code and reason (and whatever else it had not read yet).
    public func closeAfterWebSocketPeer(within timeout: Duration) {
        let context = self
        close(mode: .output).assumeIsolated().whenComplete { result in
            guard case .success = result, context.channel.isActive else {
                context.close(promise: nil)
                return
            }
            let deadline = context.eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(timeout)) {
                context.close(promise: nil)
            }
            context.channel.closeFuture.whenComplete { _ in deadline.cancel() }
            // Keep reading to the peer's end of stream, also where reads are on demand (autoRead off).
            context.read()
        }
    }
}
