import NIOCore

/// The per-connection protocol logic of RFC 6455 as a value type: an event goes in, one ``Action`` comes out.
///
/// It enforces the masking direction (§5.1), reassembles fragmented messages with a size limit (§5.4, §10.4),
/// lets control frames interleave (§5.4), validates text as UTF-8 as it arrives (§8.1), answers pings
/// (§5.5.2), sends keep-alive pings and fails a peer that stops answering, runs the closing handshake with a
/// timeout (§5.5.1, §7), and turns every protocol error into the right close code (§7.4.1) and a TCP close.
/// With permessage-deflate it inflates messages frame by frame (RFC 7692 §6.2).
///
/// Time is an input: every event carries `now`, and ``nextDeadline`` tells the caller when to call
/// ``timerFired(now:)``. The caller owns I/O: it parses frames, carries out actions and masks frames it
/// sends in the client role.
///
/// Holds a zlib stream when deflate is negotiated, so copies share it: keep exactly one copy per connection.
public struct WebSocketConnectionStateMachine<Instant: InstantProtocol> where Instant.Duration == Duration {
    /// What the caller must do after an event.
    public enum Action {
        /// Nothing.
        case none
        /// Hand a complete message to the application.
        case deliver(WebSocketMessage)
        /// Send this frame (a pong, a keep-alive ping, or our Close); mask it in the client role.
        case send(WebSocketFrame)
        /// Send this Close frame, then close the TCP connection (failing the connection, or a server
        /// completing the closing handshake, RFC 6455 §7.1.1).
        case sendAndCloseConnection(WebSocketFrame)
        /// Close the TCP connection now.
        case closeConnection
    }

    enum State {
        /// Messages flow both ways.
        case open
        /// We sent Close and wait for the peer's until `deadline` (RFC 6455 §7.1.2).
        case closeSent(deadline: Instant)
        /// Client: the closing handshake is done; wait for the server to close TCP until `deadline` (§7.1.1).
        case awaitingTCPClose(deadline: Instant)
        /// The connection is closed or must be; all events are ignored.
        case closed
    }

    /// A fragmented message in progress.
    struct PartialMessage {
        var opcode: WebSocketOpcode
        var compressed: Bool
        var data: ByteBuffer
        /// How many bytes of `data` the UTF-8 validator has seen.
        var validatedBytes: Int
    }

    /// The configuration in force.
    public let configuration: WebSocketConnectionConfiguration
    private(set) var state: State = .open
    private var partial: PartialMessage?
    private var utf8 = WebSocketUTF8Validator()
    private let decompressor: WebSocketDeflateDecompressor?
    private let allocator: ByteBufferAllocator

    private var nextPing: Instant?
    private var pongDeadline: Instant?
    private var pingCounter: UInt64 = 0

    /// The close code that ended (or is ending) the connection: the peer's if it closed first (1005 if it
    /// gave none), ours otherwise; `nil` while open.
    public private(set) var closeCode: WebSocketCloseCode?

    /// The peer's Close frame (its code, `nil` for an empty body, and its reason), once one arrived and was valid
    /// while the closing handshake was still open (before our Close, or answering it); `nil` until then. With it
    /// received, the closing handshake is complete (RFC 6455 §7.1.4): both Close frames were sent and received. A
    /// connection that was failed or dropped has none.
    public private(set) var receivedClose: WebSocketClosePayload?

    /// Creates the machine for a connection whose opening handshake completed at `now`.
    ///
    /// - Parameter deflate: the negotiated permessage-deflate parameters, if any (RFC 7692 §7).
    public init(
        configuration: WebSocketConnectionConfiguration,
        deflate: WebSocketDeflateParameters? = nil,
        now: Instant,
        allocator: ByteBufferAllocator = ByteBufferAllocator()
    ) {
        self.configuration = configuration
        self.allocator = allocator
        self.decompressor = deflate.map {
            WebSocketDeflateDecompressor(configuration: $0.decompressorConfiguration(isServer: configuration.role == .server))
        }
        if let interval = configuration.pingInterval {
            nextPing = now.advanced(by: interval)
        }
    }

    // MARK: Queries

    /// Whether the application may still send data messages (no Close sent or received, RFC 6455 §5.5.1).
    public var isOpen: Bool {
        if case .open = state { return true }
        return false
    }

    /// When the caller must next call ``timerFired(now:)``; `nil` when no timer is needed.
    public var nextDeadline: Instant? {
        switch state {
        case .open:
            switch (nextPing, pongDeadline) {
            case (let ping?, let pong?): return min(ping, pong)
            case (let ping?, nil): return ping
            case (nil, let pong?): return pong
            case (nil, nil): return nil
            }
        case .closeSent(let deadline), .awaitingTCPClose(let deadline):
            return deadline
        case .closed:
            return nil
        }
    }

    // MARK: Events

    /// A frame arrived from the peer (parsed, unmasked).
    public mutating func frameReceived(_ frame: WebSocketFrame, now: Instant) -> Action {
        switch state {
        case .closed, .awaitingTCPClose:
            return .none
        case .closeSent:
            // After our Close only the peer's Close matters (RFC 6455 §5.5.1); other frames are discarded.
            guard frame.opcode == .connectionClose else { return .none }
        case .open:
            // Any frame shows the peer alive, also one it sent before reaching our ping.
            peerShowedLife(now: now)
        }
        switch configuration.role {
        case .server where frame.maskKey == nil:
            return fail(WebSocketError.unmaskedClientFrame, now: now)
        case .client where frame.maskKey != nil:
            return fail(WebSocketError.maskedServerFrame, now: now)
        default:
            break
        }
        do throws(WebSocketError) {
            switch frame.opcode {
            case .ping:
                return .send(WebSocketFrame(opcode: .pong, data: frame.data))
            case .pong:
                pongReceived(frame.data, now: now)
                return .none
            case .connectionClose:
                return try closeReceived(frame.data, now: now)
            case .text, .binary:
                return try dataFrameReceived(frame)
            case .continuation:
                return try continuationReceived(frame)
            default:
                // Reserved opcodes are rejected by the parser; guard anyway (RFC 6455 §5.2).
                throw WebSocketError.reservedOpcode
            }
        } catch {
            return fail(error, now: now)
        }
    }

    /// The frame parser (or another check) found a protocol error: fail the connection (RFC 6455 §7.1.7).
    public mutating func errorCaught(_ error: WebSocketError, now: Instant) -> Action {
        fail(error, now: now)
    }

    /// The application closes the connection (RFC 6455 §7.1.2): send Close and wait for the peer's.
    public mutating func close(code: WebSocketCloseCode = .normalClosure, reason: String = "", now: Instant) -> Action {
        guard case .open = state else { return .none }
        closeCode = code
        state = .closeSent(deadline: now.advanced(by: configuration.closeTimeout))
        discardPartialMessage()
        return .send(WebSocketClosePayload(code: code, reason: reason).frame(allocator: allocator))
    }

    /// The deadline from ``nextDeadline`` passed: send a keep-alive ping, or give up on a silent peer.
    public mutating func timerFired(now: Instant) -> Action {
        switch state {
        case .closeSent(let deadline), .awaitingTCPClose(let deadline):
            guard now >= deadline else { return .none }
            state = .closed
            return .closeConnection
        case .closed:
            return .none
        case .open:
            if let deadline = pongDeadline, now >= deadline {
                closeCode = .goingAway
                state = .closed
                discardPartialMessage()
                return .sendAndCloseConnection(
                    WebSocketClosePayload(code: .goingAway, reason: "no pong").frame(allocator: allocator))
            }
            if let due = nextPing, now >= due {
                nextPing = nil
                pongDeadline = now.advanced(by: configuration.pongTimeout)
                pingCounter &+= 1
                var payload = allocator.buffer(capacity: 8)
                payload.writeInteger(pingCounter)
                return .send(WebSocketFrame(opcode: .ping, data: payload))
            }
            return .none
        }
    }

    /// The peer is alive though the pong to our ping has not come: a frame from it arrived, or its TCP took in more
    /// of what we sent. A peer that reads slowly reaches our ping only after the backlog queued before it, which
    /// may take longer than ``WebSocketConnectionConfiguration/pongTimeout``; as long as it keeps reading it gets
    /// another `pongTimeout` (a peer that stops reading shows no life and is failed when the timeout passes).
    public mutating func peerShowedLife(now: Instant) {
        guard case .open = state, pongDeadline != nil else { return }
        pongDeadline = now.advanced(by: configuration.pongTimeout)
    }

    /// The TCP connection closed (by either side); nothing more will happen.
    public mutating func connectionClosed() {
        if closeCode == nil { closeCode = .abnormalClosure }
        state = .closed
        discardPartialMessage()
    }

    // MARK: Control frames

    private mutating func pongReceived(_ payload: ByteBuffer, now: Instant) {
        // Only a pong echoing our latest ping counts; unsolicited pongs are allowed and ignored (§5.5.3).
        guard pongDeadline != nil, payload.readableBytes == 8,
            payload.getInteger(at: payload.readerIndex, as: UInt64.self) == pingCounter
        else { return }
        pongDeadline = nil
        if let interval = configuration.pingInterval {
            nextPing = now.advanced(by: interval)
        }
    }

    private mutating func closeReceived(_ payload: ByteBuffer, now: Instant) throws(WebSocketError) -> Action {
        let close = try WebSocketClosePayload(parsing: payload)
        receivedClose = close
        if case .closeSent = state {
            // Our Close was answered: the closing handshake is complete.
            return finishClosingHandshake(now: now)
        }
        closeCode = close.code ?? .noStatusReceived
        discardPartialMessage()
        // Echo the status code (RFC 6455 §5.5.1); an empty Close is answered with an empty one.
        let reply = WebSocketClosePayload(code: close.code).frame(allocator: allocator)
        switch configuration.role {
        case .server:
            state = .closed
            return .sendAndCloseConnection(reply)
        case .client:
            state = .awaitingTCPClose(deadline: now.advanced(by: configuration.closeTimeout))
            return .send(reply)
        }
    }

    private mutating func finishClosingHandshake(now: Instant) -> Action {
        switch configuration.role {
        case .server:
            state = .closed
            return .closeConnection
        case .client:
            // The server should close TCP first (RFC 6455 §7.1.1); give it time.
            state = .awaitingTCPClose(deadline: now.advanced(by: configuration.closeTimeout))
            return .none
        }
    }

    // MARK: Data frames

    private mutating func dataFrameReceived(_ frame: WebSocketFrame) throws(WebSocketError) -> Action {
        guard partial == nil else { throw WebSocketError.dataFrameDuringFragmentedMessage }
        let compressed = frame.rsv1
        if compressed && decompressor == nil {
            throw WebSocketError(.compressionError, "RSV1 set but permessage-deflate was not negotiated")
        }
        let isText = frame.opcode == .text

        if frame.fin && !compressed {
            // Fast path: a whole uncompressed message in one frame is delivered without copying.
            guard frame.data.readableBytes <= configuration.maxMessageSize else {
                throw WebSocketError(.messageTooLarge, "\(frame.data.readableBytes) bytes, limit \(configuration.maxMessageSize)")
            }
            if isText {
                guard utf8.validate(frame.data), utf8.finish() else {
                    utf8.reset()
                    throw WebSocketError.invalidUTF8
                }
            }
            return .deliver(WebSocketMessage(opcode: frame.opcode, data: frame.data))
        }

        let capacity = compressed ? min(configuration.maxMessageSize, max(frame.data.readableBytes * 4, 256)) : frame.data.readableBytes
        partial = PartialMessage(opcode: frame.opcode, compressed: compressed, data: allocator.buffer(capacity: capacity), validatedBytes: 0)
        try append(frame.data)
        return frame.fin ? try completeMessage() : .none
    }

    private mutating func continuationReceived(_ frame: WebSocketFrame) throws(WebSocketError) -> Action {
        guard partial != nil else { throw WebSocketError.unexpectedContinuation }
        if frame.rsv1 {
            throw WebSocketError(.compressionError, "RSV1 set on a continuation frame (RFC 7692 §6.1)")
        }
        try append(frame.data)
        return frame.fin ? try completeMessage() : .none
    }

    /// Adds a fragment's payload to the message in progress, inflating it and validating new text.
    private mutating func append(_ data: ByteBuffer) throws(WebSocketError) {
        guard var message = partial else { return }
        partial = nil  // keep `message.data` uniquely referenced while it grows
        defer { partial = message }
        if message.compressed, let decompressor {
            try decompressor.decompress(data, into: &message.data, limit: configuration.maxMessageSize)
        } else {
            guard message.data.readableBytes + data.readableBytes <= configuration.maxMessageSize else {
                throw WebSocketError(
                    .messageTooLarge, "more than \(configuration.maxMessageSize) bytes after \(message.data.readableBytes)")
            }
            message.data.writeImmutableBuffer(data)
        }
        try validateNewText(&message)
    }

    private mutating func validateNewText(_ message: inout PartialMessage) throws(WebSocketError) {
        guard message.opcode == .text else { return }
        let start = message.validatedBytes
        let valid = message.data.withUnsafeReadableBytes { bytes in
            utf8.validate(UnsafeRawBufferPointer(rebasing: bytes[start...]))
        }
        message.validatedBytes = message.data.readableBytes
        if !valid { throw WebSocketError.invalidUTF8 }
    }

    private mutating func completeMessage() throws(WebSocketError) -> Action {
        guard var message = partial else { return .none }
        partial = nil
        if message.compressed, let decompressor {
            try decompressor.finishMessage(into: &message.data, limit: configuration.maxMessageSize)
            try validateNewText(&message)
        }
        if message.opcode == .text && !utf8.finish() {
            throw WebSocketError(.invalidUTF8, "the message ends inside a UTF-8 sequence")
        }
        return .deliver(WebSocketMessage(opcode: message.opcode, data: message.data))
    }

    private mutating func discardPartialMessage() {
        if partial?.compressed == true { decompressor?.reset() }
        partial = nil
        utf8.reset()
    }

    // MARK: Failing

    /// Fail the WebSocket Connection (RFC 6455 §7.1.7) with the error's close code.
    private mutating func fail(_ error: WebSocketError, now: Instant) -> Action {
        discardPartialMessage()
        switch state {
        case .open:
            closeCode = error.closeCode
            state = .closed
            return .sendAndCloseConnection(
                WebSocketClosePayload(code: error.closeCode, reason: error.closeReason).frame(allocator: allocator))
        case .closeSent, .awaitingTCPClose:
            state = .closed
            return .closeConnection
        case .closed:
            return .none
        }
    }
}

@available(*, unavailable)
extension WebSocketConnectionStateMachine: Sendable {}
