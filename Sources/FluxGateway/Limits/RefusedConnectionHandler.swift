import NIOCore
import Synchronization

/// Answers a connection refused by a connection limit at once — `503` with `Retry-After` and a JSON body, without
/// waiting for a request — and closes it: our side at once, the socket within ``lingerTime`` (time for the
/// client to read the answer), or at once when ``RefusalBudget/maximumLingering`` refused connections already
/// linger. A refused client never holds a descriptor for long, however silent it stays.
final class RefusedConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// How long a refused connection may stay open for its client to read the answer.
    static let lingerTime = TimeAmount.seconds(1)

    private let message: String
    private let budget: RefusalBudget
    private var answered = false

    init(message: String, budget: RefusalBudget) {
        self.message = message
        self.budget = budget
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { answer(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        answer(context: context)
        context.fireChannelActive()
    }

    /// What the client sends is not read for meaning: the answer is the same whatever it asks.
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    private func answer(context: ChannelHandlerContext) {
        guard !answered else { return }
        answered = true
        let response = GatewayResponse.error(.serviceUnavailable, "overloaded", message, headers: ["Retry-After": "1"])
        var bytes = context.channel.allocator.buffer(capacity: 160 + response.body.readableBytes)
        bytes.writeString("HTTP/1.1 503 Service Unavailable\r\n")
        for (name, value) in response.headers {
            bytes.writeString("\(name): \(value)\r\n")
        }
        bytes.writeString("Content-Length: \(response.body.readableBytes)\r\nConnection: close\r\n\r\n")
        var body = response.body
        bytes.writeBuffer(&body)
        let channel = context.channel
        guard budget.startLingering() else {
            context.writeAndFlush(Self.wrapOutboundOut(bytes)).whenComplete { _ in channel.close(promise: nil) }
            return
        }
        let budget = self.budget
        channel.closeFuture.whenComplete { _ in budget.stopLingering() }
        context.writeAndFlush(Self.wrapOutboundOut(bytes)).whenComplete { _ in
            channel.close(mode: .output).whenFailure { _ in channel.close(promise: nil) }
        }
        channel.eventLoop.scheduleTask(in: Self.lingerTime) { channel.close(promise: nil) }
    }
}

/// Counts refused connections that linger for their client to read the `503`, across all event loops.
final class RefusalBudget: Sendable {
    /// Refused connections that may linger at once; more are closed right after the answer is written.
    static let maximumLingering = 64

    private let lingering = Atomic<Int>(0)

    /// Takes a place for a lingering connection; `false` when none is left.
    func startLingering() -> Bool {
        if lingering.wrappingAdd(1, ordering: .relaxed).newValue <= Self.maximumLingering { return true }
        lingering.wrappingSubtract(1, ordering: .relaxed)
        return false
    }

    func stopLingering() {
        lingering.wrappingSubtract(1, ordering: .relaxed)
    }
}
