import FluxConsumer
import FluxCore
import FluxGateway
import FluxTesting
import Logging
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
