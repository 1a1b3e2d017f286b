import FluxConsumer
import FluxCore
import FluxGateway
import FluxTesting
import FluxWebSocket
import FluxWire
import Logging
import NIOCore
import Testing

@Suite struct PushChannelConnectionTests {
    /// A server that takes the connection and never answers the handshake fails the connect, it does not hang.
    @Test func aServerThatNeverAnswersTheHandshakeFailsTheConnect() async throws {
        let server = try await RawTCPServer.listen()
        let port = server.port
        async let accepted = server.accept(timeout: .seconds(60))
        await #expect {
            _ = try await PushChannelConnection.connect(host: "127.0.0.1", port: port, target: "/events/subscribe?after=0", handshakeTimeoutSeconds: 1)
        } throws: { error in
            (error as? PushChannelError)?.refusedStatus == nil && "\(error)".contains("did not answer the WebSocket handshake")
        }
        let connection = await accepted
        #expect(connection != nil)
        let request = try await connection?.readUntil("\r\n\r\n")
        #expect(request?.hasPrefix("GET /events/subscribe?after=0 HTTP/1.1") == true)
        await connection?.close()
        await server.close()
    }

    /// A proxy that refuses the upgrade and keeps the connection open: the status is reported at once (the consumer
    /// then polls), whether the answer is an HTTP error or a `101` that fails the handshake checks.
    @Test(arguments: [
        ("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 2\r\n\r\n{}", 502),
        ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: wrong\r\n\r\n", 101),
    ])
    func aRefusedUpgradeReportsTheStatus(answer: String, status: Int) async throws {
        let server = try await RawTCPServer.listen()
        let port = server.port
        async let refusal: PushChannelError? = {
            do {
                _ = try await PushChannelConnection.connect(host: "127.0.0.1", port: port, target: "/events/subscribe", handshakeTimeoutSeconds: 30)
                return nil
            } catch {
                return error as? PushChannelError
            }
        }()
        let connection = try #require(await server.accept(timeout: .seconds(60)))
        _ = try await connection.readUntil("\r\n\r\n")
        try await connection.send(answer)
        let error = await refusal
        // The connection stays open until after this: a client that waited for the close would have timed out
        // (30 s, no status) instead.
        #expect(error?.refusedStatus == status, "reported from the answer, not when the connection closes: \(String(describing: error))")
        await connection.close()
        await server.close()
    }

    /// The upgrade request carries the extra headers, the deflate offer, and the target.
    @Test func theRequestCarriesTheHeadersAndTheDeflateOffer() async throws {
        let (server, connection, request, opened) = try await Self.open(headers: [("Authorization", "Bearer secret-token")]) { _ in [] }
        let head = request.lowercased()
        #expect(request.hasPrefix("GET /events/subscribe?after=3 HTTP/1.1\r\n"))
        #expect(head.contains("\r\nauthorization: bearer secret-token\r\n"))
        #expect(head.contains("\r\nsec-websocket-extensions: permessage-deflate"))
        #expect(head.contains("\r\nupgrade: websocket\r\n"))
        await connection.close()
        await opened.close()
        await server.close()
    }

    /// The server's first frames in the same TCP segment as its `101` are delivered, and its Close's code and reason
    /// are reported (the consumer tells users why the gateway ended a subscription: 4409, 4400, 1008).
    @Test func framesBehindThe101AndTheServersCloseReasonAreKept() async throws {
        let (server, connection, _, opened) = try await Self.open { _ in
            [Self.frame(.text, Self.caughtUp(7)), Self.closeFrame(4409, "the gateway serves store epoch b, not a")]
        }
        guard case .caughtUp(let head) = try await opened.next() else {
            Issue.record("expected caught_up first")
            return
        }
        #expect(head == Position(7))
        // The client echoes the Close (masked) and waits for the server to close TCP.
        while connection.buffered.readableBytes < 2, try await connection.readMore() {}
        let echo = connection.withBuffered { $0.getBytes(at: $0.readerIndex, length: 2) } ?? []
        #expect(echo.count == 2 && echo[0] == 0x88 && echo[1] & 0x80 != 0, "a masked Close: \(echo)")
        await connection.close()
        #expect(try await opened.next() == nil)
        let close = await opened.close
        #expect(close?.code == 4409)
        #expect(close?.reason == "the gateway serves store epoch b, not a")
        await opened.close()
        await server.close()
    }

    /// Cancelling a `next()` that waits throws `CancellationError` (how `EventConsumer.stop()` ends a subscription);
    /// a message that arrives meanwhile goes to the next call, and closing is prompt.
    @Test func aCancelledNextLosesNoMessage() async throws {
        let (server, connection, _, opened) = try await Self.open { _ in [] }
        let shared = UncheckedBox(opened)
        let waiting = Task { try await shared.value.next() }
        try await Task.sleep(for: .milliseconds(200))
        waiting.cancel()
        await #expect(throws: CancellationError.self) { _ = try await waiting.value }
        try await connection.send(raw: Self.frame(.text, Self.caughtUp(9)))
        guard case .caughtUp(let head) = try await opened.next() else {
            Issue.record("expected the message that arrived after the cancellation")
            return
        }
        #expect(head == Position(9))
        await connection.close()
        // Closing ends (its own bound is 2 s; on a loaded machine allow far more, far below a hang).
        let started = ContinuousClock.now
        await opened.close()
        #expect(ContinuousClock.now - started < .seconds(60))
        await server.close()
    }

    // MARK: A scripted server

    /// Accepts a `PushChannelConnection` for `/events/subscribe?after=3` on a raw TCP server, and answers its handshake
    /// with a valid `101` followed, in the same write, by the frames `after` returns for the request.
    static func open(
        headers: [(String, String)] = [], after: (String) -> [ByteBuffer]
    ) async throws -> (RawTCPServer, RawTCPConnection, String, PushChannelConnection) {
        let server = try await RawTCPServer.listen()
        let port = server.port
        async let opening = PushChannelConnection.connect(host: "127.0.0.1", port: port, target: "/events/subscribe?after=3", headers: headers)
        let connection = try #require(await server.accept(timeout: .seconds(60)))
        let request = try #require(try await connection.readUntil("\r\n\r\n"))
        let key = try #require(request.split(separator: "\r\n").first { $0.lowercased().hasPrefix("sec-websocket-key:") }?
            .split(separator: ":", maxSplits: 1).last?.trimmingCharacters(in: .whitespaces))
        var answer = ByteBuffer(string: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n")
        answer.writeString("Sec-WebSocket-Accept: \(WebSocketHandshake.acceptValue(forKey: key))\r\n\r\n")
        for var frame in after(request) { answer.writeBuffer(&frame) }
        try await connection.send(raw: answer)
        return (server, connection, request, try await opening)
    }

    static func frame(_ opcode: WebSocketOpcode, _ text: String) -> ByteBuffer {
        WebSocketFrameEncoder.encode(WebSocketFrame(opcode: opcode, data: ByteBuffer(string: text)), allocator: ByteBufferAllocator())
    }

    /// The gateway's `caught_up` message (FluxWire's `PushMessage`).
    static func caughtUp(_ head: Int64) -> String {
        String(buffer: PushMessage.caughtUp(head: Position(head)).json(baseURL: "http://127.0.0.1"))
    }

    static func closeFrame(_ code: UInt16, _ reason: String) -> ByteBuffer {
        WebSocketFrameEncoder.encode(
            WebSocketClosePayload(code: WebSocketCloseCode(rawValue: code), reason: reason).frame(), allocator: ByteBufferAllocator())
    }
}

/// Hands a connection to a task that only waits in it while the test's own task does not use it.
private struct UncheckedBox<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

@Suite struct PushChannelConnectionBackpressureTests {
    /// A subscriber that does not take its messages stops reading its socket: its memory stays bounded and the
    /// gateway meets a full socket (the subscriber falls behind and is served from the store), and every event
    /// still arrives once, in order, when it reads on.
    @Test func aSubscriberThatDoesNotConsumeStopsReading() async throws {
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        let store = InMemoryEventStore()
        let server = GatewayServer(store: store, configuration: GatewayConfiguration(port: 0, subscriberHighWater: 16 * 1024, logger: logger))
        let port = try await server.start()
        let connection = try await PushChannelConnection.connect(host: "127.0.0.1", port: port, target: "/events/subscribe?after=0", deflate: false)
        guard case .caughtUp = try await connection.next() else {
            Issue.record("expected caught_up first")
            return
        }
        let payload = EventPayload(trustedJSON: Array(("{\"x\":\"" + String(repeating: "y", count: 1000) + "\"}").utf8))
        // Events of ≈1 KB the subscriber does not take, 5 MB at a time, until the gateway meets its full socket: the
        // kernel's buffers on both ends absorb several MB first, how many depends on the machine (12 MB once was not
        // enough). A client that kept reading would never fill them: 60 MB without falling behind fails the test.
        var appended = 0
        while server.hub.fellBehindCount == 0, appended < 60_000 {
            for index in 0..<1000 {
                try await store.append(AppendRequest(aggregateID: "s\(index % 7)", aggregateName: "T", expectedVersion: .any,
                                                     events: (0..<5).map { _ in NewEvent(eventType: "t.E", payload: payload) }))
            }
            appended += 5000
            let settle = ContinuousClock.now + .seconds(5)
            while server.hub.fellBehindCount == 0, ContinuousClock.now < settle { try await Task.sleep(for: .milliseconds(20)) }
        }
        #expect(server.hub.fellBehindCount >= 1, "the subscriber kept reading what it did not consume")
        var positions: [Int64] = []
        while positions.count < appended, let message = try await connection.next() {
            if case .events(_, let events) = message { positions += events.map(\.position.rawValue) }
        }
        #expect(positions == Array(1...Int64(appended)))
        await connection.close()
        await server.stop()
    }
}
