import FluxConsumer
import FluxCore
import FluxGateway
import FluxTesting
import Foundation
import NIOCore
import Testing

@Suite struct GatewayServerTests {
    @Test func unknownPathsAre404AndWrongMethods405() async throws {
        try await withTestGateway { gateway in
            let missing = try await gateway.get("/nothing/here")
            #expect(missing.status == .notFound)
            #expect(try missing.jsonObject()["error"] as? String == "not_found")
            let wrong = try await gateway.request(.DELETE, "/events")
            #expect(wrong.status == .methodNotAllowed)
            #expect(wrong.headers.first(name: "Allow") == "GET, HEAD")
            #expect(try wrong.jsonObject()["error"] as? String == "method_not_allowed")
            #expect(try await gateway.request(.PUT, "/streams/x").status == .methodNotAllowed)
        }
    }

    /// HEAD answers like GET without a body (RFC 9110 §9.3.2), so the next request on the connection still works.
    @Test func headIsAGetWithoutABodyAndKeepsTheConnectionUsable() async throws {
        try await withTestGateway { gateway in
            _ = try await gateway.append("h-1", events: [("t.E", #"{"n": 1}"#)])
            let connection = try await RawTCPConnection.connect(port: gateway.port)
            let request = "/events?offset=0 HTTP/1.1\r\nHost: x\r\n\r\n"
            try await connection.send("HEAD " + request + "GET " + request)
            let head = try #require(try await connection.readUntil("\r\n\r\n"))
            #expect(head.hasPrefix("HTTP/1.1 200"))
            // The very next bytes are the GET's status line, not a body; both announce the same length.
            let get = try #require(try await connection.readUntil("\r\n\r\n"))
            #expect(get.hasPrefix("HTTP/1.1 200"), "\(get)")
            let length = /(?i)content-length: (\d+)/
            let headLength = try #require(head.firstMatch(of: length)).1
            #expect(headLength == (try #require(get.firstMatch(of: length)).1))
            #expect(Int(headLength) ?? 0 > 0)
            await connection.close()
        }
    }

    @Test func keepAliveServesManyRequestsOnOneConnection() async throws {
        try await withTestGateway { gateway in
            let connection = try await gateway.connect()
            for index in 0..<20 {
                let response = try await connection.request(
                    .POST, "/streams/k", headers: [("Content-Type", "application/json")],
                    body: ByteBuffer(string: #"{"aggregate_name": "K", "expected_version": "any", "events": [{"event_type": "t", "payload": \#(index)}]}"#))
                #expect(response.status == .created)
            }
            #expect(try await connection.request(.GET, "/health").status == .ok)
            await connection.close()
            #expect(try await gateway.store.head() == Position(20))
        }
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() async throws {
        try await withTestGateway { gateway in
            let connection = try await gateway.connect()
            let append = #"{"aggregate_name": "P", "expected_version": "any", "events": [{"event_type": "t", "payload": 1}]}"#
            var raw = ByteBuffer()
            raw.writeImmutableBuffer(HTTPConnection.encode(.GET, "/health", host: "x"))
            raw.writeImmutableBuffer(HTTPConnection.encode(.POST, "/streams/p", host: "x", headers: [("Content-Type", "application/json")], body: ByteBuffer(string: append)))
            raw.writeImmutableBuffer(HTTPConnection.encode(.GET, "/nope", host: "x"))
            raw.writeImmutableBuffer(HTTPConnection.encode(.GET, "/events?after=0", host: "x"))
            try await connection.send(raw: raw, expectingResponses: 4)
            let statuses = [try await connection.nextResponse(), try await connection.nextResponse(), try await connection.nextResponse(), try await connection.nextResponse()]
            #expect(statuses.map(\.status.code) == [200, 201, 404, 200])
            #expect(try statuses[0].jsonObject()["head"] as? Int == 0, "the first answer was computed before the append")
            #expect((try statuses[3].jsonObject()["events"] as? [Any])?.count == 1)
            await connection.close()
        }
    }

    @Test func pipelinedRequestsAnsweredOnTheEventLoopStayInOrder() async throws {
        // Single events and small `?offset=` pages are answered inside the read that brought them; the requests
        // pipelined behind them are then handed over from inside that answer. Order and request ids must hold.
        try await withTestGateway { gateway in
            var ids: [String] = []
            for index in 0..<5 {
                let id = UUID().uuidString.lowercased()
                let event = NewEvent(eventID: id, eventType: "t", payload: EventPayload(trustedJSON: Array("\"p\(index)\"".utf8)))
                _ = try await gateway.store.append(AppendRequest(aggregateID: "o-\(index)", aggregateName: "O", expectedVersion: .any, events: [event]))
                ids.append(id)
            }
            let connection = try await gateway.connect()
            var raw = ByteBuffer()
            var expected: [(String, Int)] = []
            for round in 0..<8 {
                for (index, id) in ids.enumerated() {
                    raw.writeImmutableBuffer(HTTPConnection.encode(.GET, "/events/\(id)", host: "x"))
                    expected.append(("/events/\(id)", index))
                }
                raw.writeImmutableBuffer(HTTPConnection.encode(.GET, "/events?offset=\(round % 5)", host: "x"))
                expected.append(("page", 5 - round % 5))
                raw.writeImmutableBuffer(HTTPConnection.encode(.GET, "/events?after=0&limit=100", host: "x"))  // the pool
                expected.append(("pool", 5))
            }
            try await connection.send(raw: raw, expectingResponses: expected.count)
            var requestIDs: [Int] = []
            for (what, value) in expected {
                let response = try await connection.nextResponse()
                #expect(response.status == .ok, "\(what)")
                if let id = response.headers.first(name: "X-Request-ID"), let number = id.split(separator: "-").last.flatMap({ Int($0) }) {
                    requestIDs.append(number)
                }
                if what.hasPrefix("/events/") {
                    #expect(String(buffer: response.body) == "\"p\(value)\"", "the payload of \(what)")
                } else {
                    #expect((try response.jsonObject()["events"] as? [Any])?.count == value, "\(what)")
                }
            }
            #expect(requestIDs == Array(requestIDs.sorted()) && requestIDs.count == expected.count, "answers in request order")
            #expect(try await gateway.get("/health").status == .ok)
            await connection.close()
        }
    }

    @Test(arguments: [
        "GARBAGE\r\n\r\n",
        "GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        "GET /health HTTP/9.9\r\n\r\n",
        "GET /health HTTP/1.1\r\nBad Header Line\r\n\r\n",
    ])
    func malformedHTTPGetsAJSON400AndTheServerKeepsServing(_ raw: String) async throws {
        try await withTestGateway { gateway in
            let connection = try await gateway.connect()
            try await connection.send(raw: raw)
            let response = try await connection.nextResponse()
            #expect(response.status == .badRequest)
            #expect(try response.jsonObject()["error"] as? String == "bad_request")
            #expect(await connection.isClosedByPeer(within: .seconds(5)))
            #expect(try await gateway.get("/health").status == .ok)
        }
    }

    /// A store whose single-event and page reads take a while, as under load.
    final class SlowReads: EventStore {
        let store = InMemoryEventStore()
        var epoch: StoreEpoch { store.epoch }
        func head() async throws -> Position { try await store.head() }
        func read(after position: Position, limit: Int, filter: EventFilter) async throws -> [RecordedEvent] {
            try await Task.sleep(for: .milliseconds(800))
            return try await store.read(after: position, limit: limit, filter: filter)
        }
        func readStream(_ aggregateID: String, fromVersion: Int64, limit: Int) async throws -> [RecordedEvent] {
            try await store.readStream(aggregateID, fromVersion: fromVersion, limit: limit)
        }
        func event(id: String) async throws -> RecordedEvent? {
            try await Task.sleep(for: .milliseconds(800))
            return try await store.event(id: id)
        }
        func streams(after cursor: String?, prefix: String, aggregateNames: Set<String>, limit: Int) async throws -> [StreamSummary] {
            try await store.streams(after: cursor, prefix: prefix, aggregateNames: aggregateNames, limit: limit)
        }
        func waitForHead(beyond position: Position, timeout: Duration) async throws -> Position {
            try await store.waitForHead(beyond: position, timeout: timeout)
        }
        func append(_ request: AppendRequest) async throws -> AppendResult { try await store.append(request) }
    }

    /// The original flux consumer reads a page, then each entry; when the server stops meanwhile, the reads in flight
    /// are answered (a 503 would be decoded as an empty event and the rest of the page skipped).
    @Test func stopAnswersReadsInFlight() async throws {
        let store = SlowReads()
        let gateway = try await TestGateway.start(store: store)
        let appended = try await store.append(AppendRequest(
            aggregateID: "a", aggregateName: "A", expectedVersion: .any,
            events: [NewEvent(eventID: "e-1", eventType: "t", payload: EventPayload(trustedJSON: Array(#"{"n":1}"#.utf8)))]))
        #expect(appended.version == 0)
        let entry = try await gateway.connect()
        try await entry.send(raw: HTTPConnection.encode(.GET, "/events/e-1", host: "x"))
        let page = try await gateway.connect()
        try await page.send(raw: HTTPConnection.encode(.GET, "/events?offset=0", host: "x"))
        try await Task.sleep(for: .milliseconds(200))
        await gateway.stop()
        let entryAnswer = try await entry.nextResponse()
        #expect(entryAnswer.status == .ok && entryAnswer.text == #"{"n":1}"#, "\(entryAnswer.status) \(entryAnswer.text)")
        let pageAnswer = try await page.nextResponse()
        #expect(pageAnswer.status == .ok, "\(pageAnswer.status) \(pageAnswer.text)")
        #expect(await entry.isClosedByPeer(within: .seconds(5)), "then the connection closes")
    }

    @Test func stopEndsLongPollsAndClosesIdleConnections() async throws {
        let gateway = try await TestGateway.start()
        let idle = try await gateway.connect()
        #expect(try await idle.request(.GET, "/health").status == .ok)
        let polling = try await gateway.connect()
        try await polling.send(raw: HTTPConnection.encode(.GET, "/events?after=0&wait=300", host: "x"))
        try await Task.sleep(for: .milliseconds(200))
        let started = ContinuousClock.now
        await gateway.stop()
        #expect(ContinuousClock.now - started < .seconds(120), "the long-poll (300 s) is cut short")
        let cut = try await polling.nextResponse()
        #expect(cut.status == .serviceUnavailable)
        #expect(await idle.isClosedByPeer(within: .seconds(2)))
        await #expect(throws: (any Error).self) { try await HTTPConnection.connect(host: "127.0.0.1", port: gateway.port) }
    }
}
