import FluxConsumer
import FluxCore
import FluxGateway
import FluxSQLite
import FluxTesting
import Foundation
import NIOCore
import Testing

@Suite struct AppendEndpointTests {
    @Test func appendsAndAnswersCreated() async throws {
        try await withTestGateway { gateway in
            let response = try await gateway.request(
                .POST, "/streams/acc-1",
                json: #"{"aggregate_name": "Account", "expected_version": -1, "events": [{"event_type": "account.AccountCreated", "payload": {"account_id": "acc-1", "balance": 0}}, {"event_type": "account.AccountCredited", "payload": {"amount": 50}}]}"#
            )
            #expect(response.status == .created)
            #expect(response.headers.first(name: "Content-Type") == "application/json")
            let body = try response.jsonObject()
            #expect(body["aggregate_id"] as? String == "acc-1")
            #expect(body["first_position"] as? Int == 1)
            #expect(body["last_position"] as? Int == 2)
            #expect(body["version"] as? Int == 1)
            #expect(body["epoch"] as? String == gateway.store.epoch.rawValue)
            let stored = try await gateway.store.read(after: .start, limit: 10)
            #expect(stored.map(\.payload.description) == [#"{"account_id": "acc-1", "balance": 0}"#, #"{"amount": 50}"#])
        }
    }

    @Test func conflictIs409WithCurrentVersionAndStoresNothing() async throws {
        try await withTestGateway { gateway in
            try await gateway.append("acc-1", expected: "-1", events: [("t.A", "1"), ("t.B", "2")])
            let response = try await gateway.append("acc-1", expected: "0", events: [("t.C", "3")])
            #expect(response.status == .conflict)
            let body = try response.jsonObject()
            #expect(body["error"] as? String == "conflict")
            #expect(body["current_version"] as? Int == 1)
            #expect((body["message"] as? String)?.isEmpty == false)
            #expect(try await gateway.store.head() == Position(2))
            let again = try await gateway.append("acc-1", expected: "-1", events: [("t.C", "3")])
            #expect(again.status == .conflict)
            let ok = try await gateway.append("acc-1", expected: "1", events: [("t.C", "3")])
            #expect(ok.status == .created)
        }
    }

    @Test func retryWithSameEventIDsIsIdempotent() async throws {
        try await withTestGateway { gateway in
            let body = #"{"aggregate_name": "A", "expected_version": -1, "events": [{"event_type": "t", "payload": {}, "event_id": "e-1"}, {"event_type": "t", "payload": {}, "event_id": "e-2"}]}"#
            let first = try await gateway.request(.POST, "/streams/s", json: body)
            let retry = try await gateway.request(.POST, "/streams/s", json: body)
            #expect(first.status == .created && retry.status == .created)
            let firstBody = try first.jsonObject(), retryBody = try retry.jsonObject()
            #expect(firstBody["first_position"] as? Int == retryBody["first_position"] as? Int)
            #expect(firstBody["last_position"] as? Int == retryBody["last_position"] as? Int)
            #expect(firstBody["version"] as? Int == retryBody["version"] as? Int)
            #expect(try await gateway.store.head() == Position(2))
            let elsewhere = try await gateway.request(
                .POST, "/streams/other", json: #"{"aggregate_name": "A", "expected_version": "any", "events": [{"event_type": "t", "payload": {}, "event_id": "e-1"}]}"#)
            #expect(elsewhere.status == .conflict)
            #expect(try elsewhere.jsonObject()["error"] as? String == "duplicate_event_id")
            let otherPayload = try await gateway.request(.POST, "/streams/s", json: body.replacingOccurrences(of: #""payload": {}, "event_id": "e-2""#, with: #""payload": {"x": 1}, "event_id": "e-2""#))
            #expect(otherPayload.status == .conflict, "a retry with another payload is not the same append")
            #expect(try otherPayload.jsonObject()["error"] as? String == "duplicate_event_id")
            #expect(try await gateway.store.head() == Position(2))
        }
    }

    @Test func anotherAggregateNameIs409AndStoresNothing() async throws {
        try await withTestGateway { gateway in
            try await gateway.append("order-1", name: "Order", expected: "-1", events: [("t.A", "1")])
            for expected in [#""any""#, "0", "-1"] {
                let response = try await gateway.append("order-1", name: "Account", expected: expected, events: [("t.B", "2")])
                #expect(response.status == .conflict, "expected_version \(expected)")
                let body = try response.jsonObject()
                #expect(body["error"] as? String == "aggregate_name_mismatch", "expected_version \(expected)")
                #expect((body["message"] as? String)?.contains("Order") == true, "\(body)")
            }
            #expect(try await gateway.store.head() == Position(1))
            #expect(try await gateway.append("order-1", name: "Order", expected: "0", events: [("t.B", "2")]).status == .created)
        }
    }

    @Test(arguments: [
        ("not json", "{nope"),
        ("empty body", ""),
        ("array body", "[]"),
        ("missing aggregate_name", #"{"expected_version": -1, "events": [{"event_type": "t", "payload": 1}]}"#),
        ("aggregate_name not a string", #"{"aggregate_name": 5, "expected_version": -1, "events": [{"event_type": "t", "payload": 1}]}"#),
        ("missing expected_version", #"{"aggregate_name": "A", "events": [{"event_type": "t", "payload": 1}]}"#),
        ("expected_version -2", #"{"aggregate_name": "A", "expected_version": -2, "events": [{"event_type": "t", "payload": 1}]}"#),
        ("expected_version fraction", #"{"aggregate_name": "A", "expected_version": 1.5, "events": [{"event_type": "t", "payload": 1}]}"#),
        ("expected_version other string", #"{"aggregate_name": "A", "expected_version": "latest", "events": [{"event_type": "t", "payload": 1}]}"#),
        ("missing events", #"{"aggregate_name": "A", "expected_version": -1}"#),
        ("events not an array", #"{"aggregate_name": "A", "expected_version": -1, "events": {}}"#),
        ("empty events", #"{"aggregate_name": "A", "expected_version": -1, "events": []}"#),
        ("event without type", #"{"aggregate_name": "A", "expected_version": -1, "events": [{"payload": 1}]}"#),
        ("event without payload", #"{"aggregate_name": "A", "expected_version": -1, "events": [{"event_type": "t"}]}"#),
        ("event not an object", #"{"aggregate_name": "A", "expected_version": -1, "events": [3]}"#),
        ("event_id not a string", #"{"aggregate_name": "A", "expected_version": -1, "events": [{"event_type": "t", "payload": 1, "event_id": 7}]}"#),
        ("same event_id twice", #"{"aggregate_name": "A", "expected_version": -1, "events": [{"event_type": "t", "payload": 1, "event_id": "x"}, {"event_type": "t", "payload": 1, "event_id": "x"}]}"#),
        ("trailing garbage", #"{"aggregate_name": "A", "expected_version": -1, "events": [{"event_type": "t", "payload": 1}]} x"#),
    ])
    func badBodiesAre400AndStoreNothing(_ name: String, _ body: String) async throws {
        try await withTestGateway { gateway in
            let connection = try await gateway.connect()
            let response = try await connection.request(.POST, "/streams/s", headers: [("Content-Type", "application/json")], body: ByteBuffer(string: body))
            #expect(response.status == .badRequest, "\(name)")
            let json = try response.jsonObject()
            #expect(json["error"] as? String == "bad_request", "\(name)")
            #expect((json["message"] as? String)?.isEmpty == false, "\(name)")
            #expect(try await gateway.store.head() == .start, "\(name)")
            // The same connection keeps serving.
            let health = try await connection.request(.GET, "/health")
            #expect(health.status == .ok, "\(name)")
            await connection.close()
        }
    }

    @Test func aggregateIDOver256BytesIs400() async throws {
        try await withTestGateway { gateway in
            let long = String(repeating: "a", count: 257)
            let response = try await gateway.append(long, events: [("t", "1")])
            #expect(response.status == .badRequest)
            #expect((try response.jsonObject()["message"] as? String)?.contains("256") == true)
            let exactly = try await gateway.append(String(repeating: "a", count: 256), events: [("t", "1")])
            #expect(exactly.status == .created)
        }
    }

    /// A NUL (or any C0 control character or DEL) in an id or name is refused: on SQLite, `acc-1\0x` was stored
    /// whole but read back as `acc-1`, another stream. Reads by such ids find nothing.
    @Test func controlCharactersInIdsAndNamesAre400() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fluxgate-nul-\(UUID().uuidString)")
        let store = try SQLiteEventStore(path: directory.appendingPathComponent("events.sqlite").path)
        try await withTeardown({
            try? await store.close()
            try? FileManager.default.removeItem(at: directory)
        }) {
            try await withTestGateway(await TestGateway.start(store: store)) { gateway in
                let body = #"{"aggregate_name": "Account", "expected_version": "any", "events": [{"event_type": "t.A", "payload": 1, "event_id": "E1"}]}"#
                #expect(try await gateway.request(.POST, "/streams/acc-1", json: body).status == .created)
                let refused = try await gateway.request(.POST, "/streams/acc-1%00x", json: body.replacingOccurrences(of: "E1", with: "E2"))
                #expect(refused.status == .badRequest)
                let json = try refused.jsonObject()
                #expect(json["error"] as? String == "bad_request")
                #expect(json["message"] as? String == "aggregate_id contains a control character (U+0000 at byte 5); ids and names must be printable")
                for (field, bad) in [
                    ("event_type", #""t.A\u0000""#), ("event_id", #""E3\u0000""#), ("aggregate_name", #""Account\u0000""#), ("event_type", #""t.\u007f""#),
                ] {
                    let badBody = #"{"aggregate_name": "Account", "expected_version": "any", "events": [{"event_type": "t.A", "payload": 1, "event_id": "E3"}]}"#
                        .replacingOccurrences(of: field == "aggregate_name" ? #""Account""# : field == "event_id" ? #""E3""# : #""t.A""#, with: bad)
                    let response = try await gateway.request(.POST, "/streams/acc-2", json: badBody)
                    #expect(response.status == .badRequest, "\(field): \(badBody)")
                    #expect((try response.jsonObject()["message"] as? String)?.contains("\(field) contains a control character") == true, "\(field)")
                }
                #expect(try await store.head() == Position(1), "nothing but the first append is stored")
                #expect(try await gateway.get("/streams/acc-1%00x").status == .notFound, "a stream read with a NUL must not find acc-1")
                #expect(try await gateway.get("/events/E1%00").status == .notFound, "an event read with a NUL must not find E1")
                #expect(try await gateway.get("/streams/acc-1").status == .ok)
            }
        }
    }

    @Test func percentEncodedAggregateIDs() async throws {
        try await withTestGateway { gateway in
            let response = try await gateway.append("order%2F17%20x", events: [("t", "1")])
            #expect(response.status == .created)
            #expect(try response.jsonObject()["aggregate_id"] as? String == "order/17 x")
            let stream = try await gateway.get("/streams/order%2F17%20x")
            #expect(stream.status == .ok)
            let bad = try await gateway.get("/streams/bad%zz")
            #expect(bad.status == .badRequest)
        }
    }

    @Test func wrongContentTypeIs415() async throws {
        try await withTestGateway { gateway in
            let response = try await gateway.request(
                .POST, "/streams/s", json: #"{"aggregate_name": "A", "expected_version": -1, "events": [{"event_type": "t", "payload": 1}]}"#,
                headers: [("Content-Type", "text/plain")]
            )
            #expect(response.status == .unsupportedMediaType)
            #expect(try response.jsonObject()["error"] as? String == "unsupported_media_type")
        }
    }

    @Test func bodyOverTheLimitIs413AndTheServerKeepsServing() async throws {
        try await withTestGateway(await TestGateway.start(maxBodySize: 1024)) { gateway in
            let big = #"{"aggregate_name": "A", "expected_version": -1, "events": [{"event_type": "t", "payload": ""# + String(repeating: "x", count: 2000) + #""}]}"#
            let connection = try await gateway.connect()
            let response = try await connection.request(.POST, "/streams/s", headers: [("Content-Type", "application/json")], body: ByteBuffer(string: big))
            #expect(response.status == .payloadTooLarge)
            #expect(try response.jsonObject()["error"] as? String == "payload_too_large")
            #expect(await connection.isClosedByPeer(within: .seconds(5)))

            // Chunked bodies are counted too.
            let chunked = try await gateway.connect()
            try await chunked.send(raw: "POST /streams/s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
            for _ in 0..<3 { try await chunked.send(raw: "200\r\n" + String(repeating: "y", count: 512) + "\r\n", expectingResponses: 0) }
            let chunkedResponse = try await chunked.nextResponse()
            #expect(chunkedResponse.status == .payloadTooLarge)
            await chunked.close()

            #expect(try await gateway.store.head() == .start)
            let small = try await gateway.append("s", events: [("t", "1")])
            #expect(small.status == .created)
        }
    }
}

@Suite struct ExpectContinueTests {
    @Test func answers100ContinueBeforeTheBody() async throws {
        try await withTestGateway { gateway in
            let connection = try await gateway.connect()
            let body = #"{"aggregate_name": "A", "expected_version": -1, "events": [{"event_type": "t", "payload": 1}]}"#
            // The client's decoder drops the interim 100 and hands over the final response.
            try await connection.send(
                raw: "POST /streams/s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: \(body.utf8.count)\r\n\r\n",
                expectingResponses: 1)
            try await Task.sleep(for: .milliseconds(100))
            try await connection.send(raw: body, expectingResponses: 0)
            let response = try await connection.nextResponse()
            #expect(response.status == .created)
            await connection.close()
        }
    }
}
