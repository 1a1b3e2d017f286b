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
    /// Messages the client holds before it stops reading the socket (each may carry many events): the channel's
    /// buffer reads on once half of its `maximumQueued` are taken, and the session holds one more, read ahead for the
    /// next `next()`. A subscriber that stops taking them leaves the rest in the gateway's care, which serves it
    /// from the store when it falls behind.
    static let maximumQueued = 4

    private let socket: WebSocketChannel
    private let outbound: WebSocketOutbound
    /// The message the session read ahead, handed to `next()`.
    private let readAhead: ReadAhead
    /// Holds the channel's `executeThenClose` scope for this connection's life (its API is not scoped: connect,
    /// next…, close) and reads the channel's messages one ahead of the caller, so that `next()` finds the next one
    /// waiting while the caller handles the last (the channel's back-pressure holds: it reads no further ahead).
    private let session: Task<Void, Never>

    /// The close code and reason the server sent, once the connection ended (`code` is `nil` for an empty Close);
    /// `nil` when it ended without the server's Close.
    public var close: (code: UInt16?, reason: String)? {
        get async { await socket.receivedClose().map { (code: $0.code?.rawValue, reason: $0.reason) } }
    }

    private init(socket: WebSocketChannel, outbound: WebSocketOutbound, readAhead: ReadAhead, session: Task<Void, Never>) {
        self.socket = socket
        self.outbound = outbound
        self.readAhead = readAhead
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
        let readAhead = ReadAhead()
        var session: Task<Void, Never>?
        let outbound = await withCheckedContinuation { (opened: CheckedContinuation<WebSocketOutbound, Never>) in
            session = Task {
                try? await socket.executeThenClose { inbound, outbound in
                    opened.resume(returning: outbound)
                    await PushChannelConnection.serve(readAhead, from: inbound)
                }
            }
        }
        return PushChannelConnection(socket: socket, outbound: outbound, readAhead: readAhead, session: session!)
    }

    /// The session's side: reads the channel's messages into `readAhead` (waiting while it holds one), to the end of
    /// the connection; once the caller closed, what it reads (up to the server's Close and the TCP close) is dropped.
    private static func serve(_ readAhead: ReadAhead, from inbound: NIOAsyncChannelInboundStream<WebSocketMessage>) async {
        do {
            for try await message in inbound { await readAhead.put(message) }
            readAhead.end(.success(nil))
        } catch {
            readAhead.end(.failure(error))
        }
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
    /// the calling task throws `CancellationError`; a message that arrives meanwhile goes to the next call.
    private func nextMessage() async throws -> WebSocketMessage? {
        try await readAhead.take()
    }

    /// Sends one text message (a consumer group member's settlements).
    func send(text: String) async throws {
        try await outbound.send(text: text)
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
        readAhead.discard()
        let cutOff = channel.eventLoop.scheduleTask(in: .seconds(2)) { channel.close(promise: nil) }
        await session.value
        cutOff.cancel()
    }

    deinit {
        // Not closed: close now, without waiting (the connection handler's close timeout bounds it).
        socket.asyncChannel.channel.triggerUserOutboundEvent(WebSocketCloseRequest(), promise: nil)
        readAhead.discard()
    }
}

@available(*, unavailable)
extension PushChannelConnection: Sendable {}

/// The hand-over between the session, which reads the channel, and `next()`: it holds at most one message (the
/// session waits in `put` while it does), then the end of the connection for every later call.
private final class ReadAhead: Sendable {
    private struct State {
        /// The message read ahead.
        var message: WebSocketMessage?
        /// How the connection ended (`nil` once it closed normally), after `message`; kept for every later call.
        var end: Result<WebSocketMessage?, any Error>?
        /// A `take()` waiting for a message.
        var taker: CheckedContinuation<WebSocketMessage?, any Error>?
        /// The session, waiting for room.
        var putter: CheckedContinuation<Void, Never>?
        /// `close()` was called: messages are dropped, takers get `nil`.
        var discarding = false
    }

    private let state = Mutex(State())

    /// Hands `message` to a waiting `take()`, or keeps it and waits until it is taken (or dropped).
    func put(_ message: WebSocketMessage) async {
        await withCheckedContinuation { (room: CheckedContinuation<Void, Never>) in
            enum Outcome {
                case handed(CheckedContinuation<WebSocketMessage?, any Error>)
                case kept
                case dropped
            }
            let outcome: Outcome = state.withLock { state in
                if state.discarding { return .dropped }
                if let taker = state.taker.take() { return .handed(taker) }
                state.message = message
                state.putter = room
                return .kept
            }
            switch outcome {
            case .handed(let taker):
                taker.resume(returning: message)
                room.resume()
            case .dropped:
                room.resume()
            case .kept:
                break
            }
        }
    }

    /// Records how the connection ended (after the message held, if any) and wakes a waiting `take()`.
    func end(_ result: Result<WebSocketMessage?, any Error>) {
        let taker = state.withLock { state in
            state.end = result
            return state.message == nil ? state.taker.take() : nil
        }
        taker?.resume(with: result)
    }

    /// The next message (`nil` once the connection ended or `discard()` was called); `CancellationError` when the
    /// calling task is cancelled first, leaving the message that comes for the next call.
    func take() async throws -> WebSocketMessage? {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (taker: CheckedContinuation<WebSocketMessage?, any Error>) in
                enum Outcome {
                    case message(WebSocketMessage, room: CheckedContinuation<Void, Never>?)
                    case ended(Result<WebSocketMessage?, any Error>)
                    case cancelled
                    case waiting
                }
                let outcome: Outcome = state.withLock { state in
                    if let message = state.message.take() { return .message(message, room: state.putter.take()) }
                    if state.discarding { return .ended(.success(nil)) }
                    if let end = state.end { return .ended(end) }
                    // Checked under the lock: a cancellation handler that ran before found no taker.
                    if Task.isCancelled { return .cancelled }
                    state.taker = taker
                    return .waiting
                }
                switch outcome {
                case .message(let message, let room):
                    room?.resume()
                    taker.resume(returning: message)
                case .ended(let end):
                    taker.resume(with: end)
                case .cancelled:
                    taker.resume(throwing: CancellationError())
                case .waiting:
                    break
                }
            }
        } onCancel: {
            state.withLock { $0.taker.take() }?.resume(throwing: CancellationError())
        }
    }

    /// Drops the message held and every later one (the caller closed): the session reads on to the end of the
    /// connection without waiting, and `take()` returns `nil`.
    func discard() {
        let (room, taker) = state.withLock { state in
            state.discarding = true
            state.message = nil
            return (state.putter.take(), state.taker.take())
        }
        room?.resume()
        taker?.resume(returning: nil)
    }
}
