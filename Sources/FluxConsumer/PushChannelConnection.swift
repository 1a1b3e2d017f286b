import FluxCore
import FluxWebSocket
import FluxWire
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// Why the push channel could not be used.
public struct PushChannelError: Error, Sendable, CustomStringConvertible {
    /// The server (or a proxy) answered the upgrade with this HTTP status instead of `101`.
    public var refusedStatus: Int?
    /// The close code the server ended the connection with.
    public var closeCode: UInt16?
    public var message: String
    public var description: String { message }
}

/// A subscription over the gateway's WebSocket push channel, on FluxWebSocket's client (``WebSocketClient``: the same
/// handshake and connection handler as every client of our RFC 6455 layer): masked frames out, the server's pings
/// answered, permessage-deflate inflated, and the socket read only while few messages wait unconsumed.
///
/// Use from one task at a time.
public final class PushChannelConnection {
    /// Messages the client holds before it stops reading the socket (each may carry many events); it reads on once
    /// half of them are taken. A subscriber that stops taking them leaves the rest in the gateway's care, which
    /// serves it from the store when it falls behind.
    static let maximumQueued = 4

    private let socket: WebSocketChannel
    private let outbound: WebSocketOutbound
    /// The `next()` calls waiting for a message; finishing it ends the session.
    private let requests: AsyncStream<MessageRequest>.Continuation
    /// Holds the channel's `executeThenClose` scope for this connection's life (its API is not scoped: connect,
    /// next…, close), and takes messages out of it one request at a time, so the channel's back-pressure holds.
    private let session: Task<Void, Never>

    /// The close code and reason the server sent, once the connection ended (`code` is `nil` for an empty Close);
    /// `nil` when it ended without the server's Close.
    public var close: (code: UInt16?, reason: String)? {
        get async { await socket.receivedClose().map { (code: $0.code?.rawValue, reason: $0.reason) } }
    }

    private init(socket: WebSocketChannel, outbound: WebSocketOutbound, requests: AsyncStream<MessageRequest>.Continuation, session: Task<Void, Never>) {
        self.socket = socket
        self.outbound = outbound
        self.requests = requests
        self.session = session
    }

    /// Connects and completes the opening handshake for `GET <target>` (path and query).
    ///
    /// Throws `PushChannelError` with `refusedStatus` when the answer is not a valid `101` (a proxy without
    /// WebSocket support, a gateway without the push channel): the caller can fall back to polling; without one
    /// when no answer came within `handshakeTimeoutSeconds`. With `tls`
    /// it speaks `wss://`, and throws `ClientTLSError` when the TLS handshake fails.
    public static func connect(
        host: String, port: Int, target: String, deflate: Bool = true, tls: ClientTLS? = nil, headers: [(String, String)] = [],
        handshakeTimeoutSeconds: Int = 10, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> PushChannelConnection {
        var transport: WebSocketClient.TransportInitializer?
        if let tls {
            transport = { channel in try tls.addHandlers(to: channel.pipeline.syncOperations, host: host, port: port) }
        }
        let socket: WebSocketChannel
        do {
            socket = try await WebSocketClient.connect(
                to: host, port: port, path: target, headers: HTTPHeaders(headers),
                handshake: WebSocketClientHandshake(deflate: deflate ? WebSocketDeflateOptions(serverNoContextTakeover: false) : nil),
                configuration: WebSocketConnectionConfiguration(role: .client, maxMessageSize: 64 << 20, pingInterval: nil),
                transport: transport, handshakeTimeout: .seconds(handshakeTimeoutSeconds),
                backPressureStrategy: .init(lowWatermark: maximumQueued / 2, highWatermark: maximumQueued), group: group
            )
        } catch let error as WebSocketClientError {
            throw PushChannelError(refusedStatus: error.status.map { Int($0.code) }, message: error.description)
        }
        return await open(socket)
    }

    /// Starts the session that holds `socket` open.
    private static func open(_ socket: WebSocketChannel) async -> PushChannelConnection {
        let (requests, asking) = AsyncStream.makeStream(of: MessageRequest.self)
        var session: Task<Void, Never>?
        let outbound = await withCheckedContinuation { (opened: CheckedContinuation<WebSocketOutbound, Never>) in
            session = Task {
                try? await socket.executeThenClose { inbound, outbound in
                    opened.resume(returning: outbound)
                    await PushChannelConnection.serve(requests, from: inbound)
                }
            }
        }
        return PushChannelConnection(socket: socket, outbound: outbound, requests: asking, session: session!)
    }

    /// The session's side: answers each request with the next message (keeping one whose caller gave up for the
    /// next request), then, once no more requests can come, reads on to the server's Close and the TCP close.
    private static func serve(_ requests: AsyncStream<MessageRequest>, from inbound: NIOAsyncChannelInboundStream<WebSocketMessage>) async {
        var messages = inbound.makeAsyncIterator()
        var kept: Result<WebSocketMessage?, any Error>?
        for await request in requests {
            let result: Result<WebSocketMessage?, any Error>
            if let answer = kept.take() {
                result = answer
            } else {
                do {
                    result = .success(try await messages.next())
                } catch {
                    result = .failure(error)
                }
            }
            if !request.complete(with: result) { kept = result }
        }
        while (try? await messages.next()) != nil {}
    }

    /// The next text message undecoded (the JSON bytes); `nil` once the connection closed. For tools that
    /// only count or sample (load generators), where decoding every envelope would measure the client.
    public func nextText() async throws -> ByteBuffer? {
        while true {
            let message = try await nextMessage()
            guard let message else { return nil }
            if message.isText { return message.data }
        }
    }

    /// The next message (README "Wire protocol" → "Push channel"); `nil` once the connection closed (see `close`).
    public func next() async throws -> PushMessage? {
        while true {
            let message = try await nextMessage()
            guard let message else { return nil }
            // Text messages are valid UTF-8 (checked by the WebSocket layer), as `PushMessage(json:)` needs. A message
            // it does not know (a newer server may send more) is skipped.
            guard message.isText, let decoded = PushMessage(json: Array(message.data.readableBytesView)) else { continue }
            return decoded
        }
    }

    /// The next message, from the session; `nil` once the connection closed (or `close()` was called). Cancelling
    /// the calling task throws `CancellationError`; a message taken for it meanwhile goes to the next call.
    private func nextMessage() async throws -> WebSocketMessage? {
        let request = MessageRequest()
        if case .terminated = requests.yield(request) { return nil }
        return try await request.result()
    }

    /// Acknowledges handled events (optional; feeds the gateway's lag figures).
    public func acknowledge(_ position: Position) async throws {
        try await outbound.send(text: PushAcknowledgement(position: position).json)
    }

    /// Closes with 1000: reads on to the server's Close (whatever is still queued is dropped) and waits for the TCP
    /// close, at most 2 seconds.
    public func close() async {
        let channel = socket.asyncChannel.channel
        channel.triggerUserOutboundEvent(WebSocketCloseRequest(), promise: nil)
        requests.finish()
        let cutOff = channel.eventLoop.scheduleTask(in: .seconds(2)) { channel.close(promise: nil) }
        await session.value
        cutOff.cancel()
    }

    deinit {
        // Not closed: close now, without waiting (the connection handler's close timeout bounds it).
        socket.asyncChannel.channel.triggerUserOutboundEvent(WebSocketCloseRequest(), promise: nil)
        requests.finish()
    }
}

@available(*, unavailable)
extension PushChannelConnection: Sendable {}

/// One `next()` call waiting for the session's answer; its caller may give up first (task cancellation).
private final class MessageRequest: Sendable {
    private enum State {
        case asked
        case waiting(CheckedContinuation<WebSocketMessage?, any Error>)
        case answered(Result<WebSocketMessage?, any Error>)
    }

    private let state = Mutex(State.asked)

    /// The session's answer, or `CancellationError` when the calling task is cancelled before it.
    func result() async throws -> WebSocketMessage? {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let answer: Result<WebSocketMessage?, any Error>? = state.withLock { state in
                    guard case .answered(let answer) = state else {
                        state = .waiting(continuation)
                        return nil
                    }
                    return answer
                }
                if let answer { continuation.resume(with: answer) }
            }
        } onCancel: {
            _ = complete(with: .failure(CancellationError()))
        }
    }

    /// Answers the request; `false` when it was answered already (its caller gave up).
    func complete(with answer: Result<WebSocketMessage?, any Error>) -> Bool {
        let (first, waiting): (Bool, CheckedContinuation<WebSocketMessage?, any Error>?) = state.withLock { state in
            switch state {
            case .asked:
                state = .answered(answer)
                return (true, nil)
            case .waiting(let continuation):
                state = .answered(answer)
                return (true, continuation)
            case .answered:
                return (false, nil)
            }
        }
        waiting?.resume(with: answer)
        return first
    }
}
