import FluxConsumer
import FluxCore
import FluxGateway
import FluxTesting
import Foundation
import Logging
import NIOCore
import Testing

/// A server-sent-events subscriber over a raw socket.
private final class SSESubscriber {
    let connection: RawTCPConnection
    private(set) var positions: [Int64] = []
    private(set) var caughtUpHead: Int64?
    private(set) var caughtUpCount = 0
    /// The `event:` names seen, in order (`nil` for an event without one: a plain message).
    private(set) var names: [String?] = []

    init(port: Int, query: String, headers: [String] = [], receiveBuffer: Int? = nil) async throws {
        connection = try await RawTCPConnection.connect(port: port, receiveBuffer: receiveBuffer)
        let extra = headers.map { $0 + "\r\n" }.joined()
        try await connection.send("GET /events/subscribe?\(query) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nAccept: text/event-stream\r\n\(extra)\r\n")
    }

    /// The response head (status line and headers).
    func head() async throws -> String {
        try #require(try await connection.readUntil("\r\n\r\n"))
    }

    /// Reads until the `caught_up` event arrived (it may follow the events of the catch-up that were read already,
    /// when appends kept the subscriber catching up).
    func readUntilCaughtUp(timeout: Duration = .seconds(30)) async throws {
        try await read(until: { $0.caughtUpCount > 0 }, timeout: timeout)
    }

    /// Reads SSE events (through chunked framing) until `count` event positions were seen.
    func read(untilPositions count: Int, timeout: Duration = .seconds(30)) async throws {
        try await read(until: { $0.positions.count >= count }, timeout: timeout)
    }

    private func read(until done: (SSESubscriber) -> Bool, timeout: Duration) async throws {
        let deadline = ContinuousClock.now + timeout
        while !done(self) {
            guard ContinuousClock.now < deadline else { throw TestFailure("not done after \(positions.count) events (caught_up \(caughtUpCount) times): \(positions.suffix(20)); buffered: \(String(buffer: connection.buffered).prefix(300))") }
            guard let block = try await connection.readUntil("\n\n") else { throw TestFailure("stream ended after \(positions.count) events") }
            parse(block)
        }
    }

    private func parse(_ block: String) {
        // Chunk-size lines of the chunked encoding come between blocks; SSE lines have a field name and a colon.
        var event: String?
        // Swift's String treats "\r\n" as one Character: normalize before splitting lines.
        for line in block.replacingOccurrences(of: "\r\n", with: "\n").split(separator: "\n") {
            if line.hasPrefix("id: ") {
                positions.append(Int64(line.dropFirst(4)) ?? -1)
            } else if line.hasPrefix("event: ") {
                event = String(line.dropFirst(7))
            } else if line.hasPrefix("data: ") {
                names.append(event)
            }
            if line.hasPrefix("data: "), event == "caught_up" {
                caughtUpCount += 1
                let json = try? JSONSerialization.jsonObject(with: Data(line.dropFirst(6).utf8)) as? [String: Any]
                caughtUpHead = (json?["head"] as? Int).map(Int64.init)
            }
        }
    }

    func close() async { await connection.close() }
}

@Suite struct ServerSentEventsEndpointTests {
    @Test func catchUpThenLiveUnderConcurrentAppendsWithNoGapOrDuplicate() async throws {
        try await withTestGateway { gateway in
            for index in 0..<120 { try await append(gateway.store, "seed-\(index % 7)") }
            let subscriber = try await SSESubscriber(port: gateway.port, query: "after=20")
            let head = try await subscriber.head()
            #expect(head.hasPrefix("HTTP/1.1 200"))
            #expect(head.lowercased().contains("content-type: text/event-stream"))
            // Four writers append while the subscriber catches up and goes live.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for writer in 0..<4 {
                    group.addTask {
                        for index in 0..<100 {
                            try await append(gateway.store, "w\(writer)-\(index % 5)")
                        }
                    }
                }
                try await group.waitForAll()
            }
            try await subscriber.read(untilPositions: 500)
            // While appends keep coming, the catch-up may read all of them before it joins the live tail: then
            // `caught_up` follows the last of them.
            try await subscriber.readUntilCaughtUp()
            #expect(subscriber.positions == Array(21...520))
            #expect(subscriber.caughtUpCount == 1)
            #expect((subscriber.caughtUpHead ?? 0) >= 120)
            // Live: one more event arrives without polling.
            try await append(gateway.store, "late")
            try await subscriber.read(untilPositions: 501)
            #expect(subscriber.positions.last == 521)
            await subscriber.close()
        }
    }

    @Test func lastEventIDWinsOverAfterAndFiltersApply() async throws {
        try await withTestGateway { gateway in
            for index in 0..<10 {
                try await gateway.store.append(AppendRequest(
                    aggregateID: "a\(index)", aggregateName: index % 2 == 0 ? "Even" : "Odd", expectedVersion: .any,
                    events: [NewEvent(eventType: "t", payload: .null)]))
            }
            let resumed = try await SSESubscriber(port: gateway.port, query: "after=0&aggregate_name=Even", headers: ["Last-Event-ID: 4"])
            _ = try await resumed.head()
            try await resumed.read(untilPositions: 3)
            #expect(resumed.positions == [5, 7, 9])
            await resumed.close()
        }
    }

    /// `event_names=message`: every event a plain message (what `EventSource.onmessage` receives), `caught_up` still
    /// named; the default names events after their type; another value is a 400 saying which exist.
    @Test func eventNamesMessageSendsPlainMessages() async throws {
        try await withTestGateway { gateway in
            try await append(gateway.store, "x", count: 3)
            let plain = try await SSESubscriber(port: gateway.port, query: "after=0&event_names=message")
            #expect(try await plain.head().hasPrefix("HTTP/1.1 200"))
            try await plain.readUntilCaughtUp()
            #expect(plain.positions == [1, 2, 3])
            #expect(plain.names == [nil, nil, nil, "caught_up"])
            await plain.close()
            let named = try await SSESubscriber(port: gateway.port, query: "after=0&event_names=type")
            _ = try await named.head()
            try await named.readUntilCaughtUp()
            #expect(named.names.dropLast().allSatisfy { $0 != nil && $0 != "caught_up" }, "\(named.names)")
            await named.close()
            let bad = try await gateway.get("/events/subscribe?after=0&event_names=plain", headers: [("Accept", "text/event-stream")])
            #expect(bad.status == .badRequest)
            #expect((try bad.jsonObject()["message"] as? String)?.contains("event_names must be type") == true)
        }
    }

    @Test func epochMismatchAndOffsetsBeyondTheHeadAre409BadQueries400() async throws {
        try await withTestGateway { gateway in
            try await append(gateway.store, "x", count: 3)
            let sse = [("Accept", "text/event-stream")]
            let wrongEpoch = try await gateway.get("/events/subscribe?after=1&epoch=other", headers: sse)
            #expect(wrongEpoch.status == .conflict)
            #expect(try wrongEpoch.jsonObject()["error"] as? String == "epoch_mismatch")
            let beyond = try await gateway.get("/events/subscribe?after=4", headers: sse)
            #expect(beyond.status == .conflict)
            #expect(try await gateway.get("/events/subscribe?after=x", headers: sse).status == .badRequest)
            #expect(try await gateway.get("/events/subscribe?after=0", headers: sse + [("Last-Event-ID", "abc")]).status == .badRequest)
            #expect(try await gateway.get("/events/subscribe?after=0").status == .badRequest, "neither SSE nor WebSocket")
        }
    }

    @Test func aSlowSubscriberFallsBehindCatchesUpAndMissesNothing() async throws {
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        let store = InMemoryEventStore()
        let server = GatewayServer(
            store: store,
            configuration: GatewayConfiguration(port: 0, subscriberHighWater: 16 * 1024, logger: logger)
        )
        let port = try await server.start()
        try await withTeardown({ await server.stop() }) {
            // A small receive buffer and no reading for a while: the socket fills, the gateway's queue too.
            let slow = try await SSESubscriber(port: port, query: "after=0", receiveBuffer: 4096)
            _ = try await slow.head()
            try await overflowTheLiveSubscriber(of: server, store: store)
            // Now read it all.
            try await slow.read(untilPositions: 10000, timeout: .seconds(240))
            #expect(slow.positions == Array(1...10000))
            #expect(server.hub.fellBehindCount >= 1, "the subscriber went back to the store at least once")
            await slow.close()
        }
    }
}
