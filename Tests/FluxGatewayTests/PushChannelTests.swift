import FluxCore
import FluxGateway
import FluxTesting
import FluxWebSocket
import FluxWire
import Foundation
import Logging
import NIOCore
import Testing

@Suite struct PushChannelTests {
    @Test(arguments: [false, true])
    func catchUpThenLiveUnderConcurrentAppendsWithNoGapOrDuplicate(deflate: Bool) async throws {
        try await withTestGateway { gateway in
            for index in 0..<150 { try await append(gateway.store, "seed-\(index % 7)", payloadSize: 200) }
            let client = try await PushChannelTestClient(port: gateway.port, query: "after=30", deflate: deflate)
            #expect(client.status == 101, "\(client.responseHead)")
            try await withThrowingTaskGroup(of: Void.self) { group in
                for writer in 0..<4 {
                    group.addTask {
                        for index in 0..<100 { try await append(gateway.store, "w\(writer)-\(index % 5)", payloadSize: 200) }
                    }
                }
                try await group.waitForAll()
            }
            try await client.read(untilPositions: 520)
            try await client.readUntilCaughtUp()
            #expect(client.positions == Array(31...550))
            #expect(client.caughtUpHeads.count == 1)
            #expect(client.epochs == [gateway.store.epoch.rawValue])
            if deflate {
                #expect(client.responseHead.contains("server_no_context_takeover"))
                #expect(client.compressedFrames > 0, "events arrive compressed")
            } else {
                #expect(client.compressedFrames == 0)
            }
            try await append(gateway.store, "late")
            try await client.read(untilPositions: 521)
            #expect(client.positions.last == 551)
            await client.close()
        }
    }

    @Test func filtersApplyToCatchUpAndLive() async throws {
        try await withTestGateway { gateway in
            for index in 0..<6 {
                try await gateway.store.append(AppendRequest(aggregateID: "a\(index)", aggregateName: index % 2 == 0 ? "Even" : "Odd", expectedVersion: .any, events: [NewEvent(eventType: "t", payload: .null)]))
            }
            let client = try await PushChannelTestClient(port: gateway.port, query: "after=0&aggregate_name=Odd")
            try await client.read(untilPositions: 3)
            try await gateway.store.append(AppendRequest(aggregateID: "x", aggregateName: "Even", expectedVersion: .any, events: [NewEvent(eventType: "t", payload: .null)]))
            try await gateway.store.append(AppendRequest(aggregateID: "y", aggregateName: "Odd", expectedVersion: .any, events: [NewEvent(eventType: "t", payload: .null)]))
            try await client.read(untilPositions: 4)
            #expect(client.positions == [2, 4, 6, 8])
            await client.close()
        }
    }

    @Test func offsetsFromAnotherStoreClose4409AndBadQueries4400() async throws {
        try await withTestGateway { gateway in
            try await append(gateway.store, "x", count: 2)
            for (query, code) in [("after=0&epoch=\(UUID().uuidString.lowercased())", 4409), ("after=3", 4409), ("after=-1", 4400), ("after=abc", 4400)] {
                let client = try await PushChannelTestClient(port: gateway.port, query: query)
                #expect(client.status == 101)
                try await client.readUntilClosed()
                #expect(client.closeCode == UInt16(code), "\(query): \(String(describing: client.closeCode)) \(client.closeReason)")
                #expect(!client.closeReason.isEmpty)
                if code == 4409 {
                    // Whole, not cut at the Close frame's 123 bytes: it ends saying what it means.
                    #expect(client.closeReason.hasSuffix("your offsets belong to another store"), "\(client.closeReason)")
                    #expect(client.closeReason.utf8.count <= 123)
                }
                #expect(client.positions.isEmpty)
                await client.close()
            }
        }
    }

    @Test func malformedHandshakesAreAnsweredInHTTP() async throws {
        try await withTestGateway { gateway in
            let noKey = try await gateway.get("/events/subscribe?after=0", headers: [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Version", "13")])
            #expect(noKey.status == .badRequest)
            #expect(try noKey.jsonObject()["error"] as? String == "bad_handshake")
            let oldVersion = try await gateway.get("/events/subscribe?after=0", headers: [
                ("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Version", "8"), ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ])
            #expect(oldVersion.status == .upgradeRequired)
            #expect(oldVersion.headers.first(name: "Sec-WebSocket-Version") == "13")
            #expect(try await gateway.get("/health").status == .ok)
        }
    }

    @Test func acksAreAcceptedAndAnythingElseCloses1008() async throws {
        try await withTestGateway { gateway in
            try await append(gateway.store, "x", count: 3)
            let client = try await PushChannelTestClient(port: gateway.port, query: "after=0")
            try await client.read(untilPositions: 3)
            try await client.send(text: PushAcknowledgement(position: Position(3)).json)
            try await append(gateway.store, "x")
            try await client.read(untilPositions: 4)
            #expect(client.closeCode == nil)
            try await client.send(text: #"{"type": "subscribe"}"#)
            try await client.readUntilClosed()
            #expect(client.closeCode == 1008)
            await client.close()
        }
    }

    @Test func unmaskedClientFramesAreAProtocolError() async throws {
        try await withTestGateway { gateway in
            let client = try await PushChannelTestClient(port: gateway.port, query: "after=0")
            try await client.read(untilPositions: 0)
            let unmasked = WebSocketFrameEncoder.encode(WebSocketFrame(opcode: .text, data: ByteBuffer(string: "{}")), allocator: ByteBufferAllocator())
            try await client.connection.send(raw: unmasked)
            try await client.readUntilClosed()
            #expect(client.closeCode == 1002)
            await client.close()
        }
    }

    @Test func aCleanCloseFromTheClientIsEchoed() async throws {
        try await withTestGateway { gateway in
            let client = try await PushChannelTestClient(port: gateway.port, query: "after=0")
            try await client.read(untilPositions: 0)
            try await client.sendClose(code: 1000)
            try await client.readUntilClosed()
            #expect(client.closeCode == 1000)
            await client.close()
            try await Task.sleep(for: .milliseconds(100))
            #expect(try await gateway.get("/health").status == .ok)
        }
    }

    @Test func serverStopClosesSubscribersWith1001() async throws {
        let gateway = try await TestGateway.start()
        try await append(gateway.store, "x", count: 2)
        let client = try await PushChannelTestClient(port: gateway.port, query: "after=0")
        try await client.read(untilPositions: 2)
        async let stopped: Void = gateway.stop()
        try await client.readUntilClosed()
        #expect(client.closeCode == 1001)
        #expect(client.closeReason.contains("reconnect"))
        await stopped
        await client.close()
    }

    /// README "Wire protocol" → "Push channel": a subscriber that merely reads slowly is not a dead peer. Its pong
    /// comes only after it has read the backlog queued before the ping, long after the pong timeout; it is still
    /// reading, so it stays.
    @Test func aSlowReaderIsNotClosedForALatePong() async throws {
        // Pings every 200 ms, 3 s for the pong; ≥ 2 MiB (the low-water mark) of the 2.4 MB backlog is queued ahead
        // of the first ping.
        let (server, port, store) = try await Self.keepAliveGateway(pongTimeout: .seconds(3), highWater: 8 << 20)
        try await withTeardown({ await server.stop() }) {
            for index in 0..<400 { try await append(store, "slow\(index)", count: 5, payloadSize: 1000) }
            // ≤ 8 KiB per read every 20 ms (≤ 400 KiB/s): reaching the ping takes ≥ 5 s, its pong comes ≥ 2 s late; the
            // subscriber's TCP keeps acknowledging what it reads meanwhile.
            let slow = ThreadedSlowSubscriber(port: port, query: "after=0", pause: .milliseconds(20))
            let outcome = await slow.run(events: 2000, linger: .seconds(2), timeout: .seconds(600))
            #expect(outcome.failure == nil, "\(outcome.failure ?? "")")
            #expect(outcome.closeCode == nil, "closed with \(outcome.closeCode.map(String.init) ?? "-") \(outcome.closeReason)")
            #expect(outcome.positions.count == 2000 && outcome.positions == Array(1...2000))
            #expect(outcome.pingsAfterBacklog >= 1, "the keep-alive cycle goes on after the late pongs (\(outcome.pings) pings)")
        }
    }

    /// A peer that neither reads nor answers is closed with 1001 once the pong timeout passes.
    @Test func aPeerThatStopsReadingIsClosedWhenNoPongComes() async throws {
        let (server, port, store) = try await Self.keepAliveGateway(pongTimeout: .milliseconds(300), highWater: 16 * 1024)
        try await withTeardown({ await server.stop() }) {
            let stuck = try await PushChannelTestClient(port: port, query: "after=0", receiveBuffer: 4096)
            try await stuck.read(untilPositions: 0)
            for index in 0..<100 { try await append(store, "stuck\(index)", count: 5, payloadSize: 1000) }
            try await Task.sleep(for: .seconds(3))  // no reads: no pong, no progress
            try await stuck.readUntilClosed(timeout: .seconds(60))
            #expect(stuck.closeCode == 1001)
            #expect(stuck.closeReason == "no pong")
            await stuck.close()
        }
    }

    /// A gateway that pings every 200 ms (after the previous pong).
    private static func keepAliveGateway(
        pongTimeout: Duration, highWater: Int
    ) async throws -> (server: GatewayServer, port: Int, store: InMemoryEventStore) {
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        let store = InMemoryEventStore()
        let server = GatewayServer(
            store: store,
            configuration: GatewayConfiguration(
                port: 0, subscriberHighWater: highWater, pingInterval: .milliseconds(200), pongTimeout: pongTimeout, logger: logger
            )
        )
        let port = try await server.start()
        return (server, port, store)
    }

    @Test func aSlowSubscriberFallsBehindAndStillGetsEverythingOnce() async throws {
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        let store = InMemoryEventStore()
        let server = GatewayServer(
            store: store, configuration: GatewayConfiguration(port: 0, subscriberHighWater: 16 * 1024, logger: logger)
        )
        let port = try await server.start()
        try await withTeardown({ await server.stop() }) {
            let slow = try await PushChannelTestClient(port: port, query: "after=0", receiveBuffer: 4096)
            try await overflowTheLiveSubscriber(of: server, store: store)
            try await slow.read(untilPositions: 10_000, timeout: .seconds(240))
            #expect(slow.positions == Array(1...10_000))
            #expect(server.hub.fellBehindCount >= 1)
            await slow.close()
        }
    }
}

