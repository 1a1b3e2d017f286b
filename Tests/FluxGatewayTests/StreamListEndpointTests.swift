import FluxCore
@testable import FluxGateway
import FluxTesting
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import Testing

/// `GET /streams`: the stream listing, its parameters and errors, over the router and over a real gateway.
@Suite struct StreamListEndpointTests {
    static func router(_ store: any EventStore, maxPageSize: Int = 1000) -> GatewayRouter {
        var logger = Logger(label: "test.router")
        logger.logLevel = .critical
        return GatewayRouter(store: store, configuration: GatewayConfiguration(maxPageSize: maxPageSize, logger: logger))
    }

    static func respond(_ router: GatewayRouter, _ uri: String, method: HTTPMethod = .GET) async -> GatewayResponse {
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: "localhost")
        return await router.respond(to: GatewayRequest(method: method, uri: uri, headers: headers, body: ByteBuffer()))
    }

    static func json(_ response: GatewayResponse) throws -> [String: Any] {
        guard let object = try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any] else {
            throw TestFailure("not a JSON object: \(String(buffer: response.body))")
        }
        return object
    }

    static func ids(_ object: [String: Any]) -> [String] {
        (object["streams"] as? [[String: Any]] ?? []).compactMap { $0["aggregate_id"] as? String }
    }

    static func store(_ ids: [String], name: (Int) -> String = { _ in "Account" }) async throws -> InMemoryEventStore {
        let store = InMemoryEventStore()
        for (index, id) in ids.enumerated() {
            try await store.append(AppendRequest(
                aggregateID: id, aggregateName: name(index), expectedVersion: .noStream,
                events: (0...index % 2).map { _ in NewEvent(eventType: "t.E", payload: EventPayload(trustedJSON: Array("1".utf8))) }))
        }
        return store
    }

    /// The listing shows only the names a grant covers, and a grant that covers none lists nothing (never "all":
    /// to the store an empty name set means every name).
    @Test func aGrantListsOnlyItsNamesAndNoNamesListsNothing() async throws {
        let router = Self.router(try await Self.store(["a-1", "c-1", "a-2"], name: { $0 == 1 ? "Customer" : "Account" }))
        let request = GatewayRequest(method: .GET, uri: "/streams", headers: ["Host": "localhost"], body: ByteBuffer())
        func listed(_ read: AggregateAccess) async throws -> [String] {
            let grant = AccessGrant(subject: "test", read: read, write: .none, metrics: false)
            return Self.ids(try Self.json(try await router.streamList(request, grant: grant)))
        }
        #expect(try await listed(.all) == ["a-1", "a-2", "c-1"])
        #expect(try await listed(.only(["Customer"])) == ["c-1"])
        #expect(try await listed(.only([])) == [])
        #expect(try await listed(.none) == [])
    }

    @Test func listsStreamsInByteOrderWithTheirSummaries() async throws {
        let store = try await Self.store(["acc-2", "acc-1", "ord 1/x", "Acc-3"])
        let response = await Self.respond(Self.router(store), "/streams")
        #expect(response.status == .ok)
        #expect(response.headers.first(name: "Content-Type") == "application/json")
        #expect(response.headers.first(name: "Cache-Control") == "no-cache")
        #expect(response.headers.first(name: "ETag") != nil)
        let body = try Self.json(response)
        #expect(Self.ids(body) == ["Acc-3", "acc-1", "acc-2", "ord 1/x"])
        #expect(body["next"] == nil, "a short page is the last")
        #expect(body["prefix"] as? String == "")
        #expect(body["limit"] as? Int == 100)
        let streams = try #require(body["streams"] as? [[String: Any]])
        let accOne = try #require(streams.first { $0["aggregate_id"] as? String == "acc-1" })
        #expect(accOne["aggregate_name"] as? String == "Account")
        #expect(accOne["aggregate_version"] as? Int == 1)
        #expect(accOne["event_count"] as? Int == 2)
        #expect(accOne["last_position"] as? Int == 3)
        #expect((accOne["last_recorded_at"] as? String)?.hasSuffix("Z") == true)
        #expect(accOne["url"] as? String == "http://localhost/streams/acc-1")
        #expect(streams.last?["url"] as? String == "http://localhost/streams/ord%201%2Fx", "ids are escaped in URLs")
    }

    @Test func fullPagesLinkTheNextByTheLastIdAndThePrefixNarrows() async throws {
        let ids = (0..<7).map { "acc-\($0)" } + ["acc_x", "acc%y", "b-1"]
        let router = Self.router(try await Self.store(ids))
        var seen: [String] = []
        var target: String? = "/streams?prefix=acc-&limit=3"
        var pages = 0
        while let next = target {
            let body = try Self.json(await Self.respond(router, next))
            seen += Self.ids(body)
            target = (body["next"] as? String).map { $0.replacingOccurrences(of: "http://localhost", with: "") }
            pages += 1
            #expect(pages < 10)
        }
        #expect(seen == (0..<7).map { "acc-\($0)" })
        #expect(pages == 3)
        let first = try Self.json(await Self.respond(router, "/streams?prefix=acc-&limit=3"))
        #expect(first["next"] as? String == "http://localhost/streams?prefix=acc-&after=acc-2&limit=3")
        // % and _ are literal (a LIKE wildcard would match acc-…); a percent-escaped prefix is decoded first.
        #expect(Self.ids(try Self.json(await Self.respond(router, "/streams?prefix=acc_"))) == ["acc_x"])
        #expect(Self.ids(try Self.json(await Self.respond(router, "/streams?prefix=acc%25"))) == ["acc%y"])
        #expect(Self.ids(try Self.json(await Self.respond(router, "/streams?prefix=zzz"))).isEmpty)
        #expect(Self.ids(try Self.json(await Self.respond(router, "/streams?after=acc_x"))) == ["b-1"])
        #expect(Self.ids(try Self.json(await Self.respond(router, "/streams?after=&limit=1"))) == ["acc%y"], "an empty after is the first page")
    }

    @Test func everyBadValueIsA400SayingWhatIsWrong() async throws {
        let router = Self.router(try await Self.store(["a"]), maxPageSize: 500)
        let long = String(repeating: "x", count: EventKey.maximumLength + 1)
        let cases: [(String, String)] = [
            ("/streams?limit=x", "limit must be an integer"),
            ("/streams?limit=", "limit must be an integer"),
            ("/streams?limit=1.5", "limit must be an integer"),
            ("/streams?limit=%2B5", "limit must be an integer"),
            ("/streams?limit=0", "limit must be at least 1"),
            ("/streams?limit=-3", "limit must be at least 1"),
            ("/streams?limit=501", "limit must be at most 500"),
            ("/streams?limit=99999999999999999999999", "limit must be an integer"),
            ("/streams?prefix=\(long)", "prefix is 257 bytes long"),
            ("/streams?after=\(long)", "after is 257 bytes long"),
            ("/streams?prefix=a%00b", "prefix holds the control character U+0000 at byte 1"),
            ("/streams?after=a%1Fb", "after holds the control character U+001F at byte 1"),
            ("/streams?prefix=%7F", "prefix holds the control character U+007F at byte 0"),
            ("/streams?prefix=%zz", "malformed percent-escape"),
            ("/streams?prefix=%C3", "malformed percent-escape"),
            ("/streams?prefix=%FF%FE", "malformed percent-escape"),
        ]
        for (uri, message) in cases {
            let response = await Self.respond(router, uri)
            #expect(response.status == .badRequest, "\(uri)")
            let body = try Self.json(response)
            #expect(body["error"] as? String == "bad_request", "\(uri)")
            #expect((body["message"] as? String)?.contains(message) == true, "\(uri): \(body["message"] ?? "")")
        }
        let longest = String(repeating: "x", count: EventKey.maximumLength)
        #expect(await Self.respond(router, "/streams?prefix=\(longest)&after=\(longest)&limit=500").status == .ok)
    }

    @Test func otherMethodsAre405AndTheRouteIsCountedByItsTemplate() async throws {
        let router = Self.router(InMemoryEventStore())
        for method in [HTTPMethod.POST, .PUT, .DELETE] {
            let response = await Self.respond(router, "/streams", method: method)
            #expect(response.status == .methodNotAllowed, "\(method)")
            #expect(response.headers.first(name: "Allow") == "GET, HEAD")
        }
        #expect(HTTPRoute(GatewayRequest(method: .GET, uri: "/streams?prefix=a", headers: [:], body: ByteBuffer())) == .streams)
        #expect(HTTPRoute(GatewayRequest(method: .GET, uri: "/streams/a", headers: [:], body: ByteBuffer())) == .stream)
        _ = await Self.respond(router, "/streams")
        #expect(String(decoding: router.metrics.exposition(), as: UTF8.self).contains(#"route="/streams""#))
    }

    /// Over a real gateway: the listing of a store written through the API, HEAD, a 304 on an unchanged page, and a
    /// new stream showing up.
    @Test func overARealGateway() async throws {
        try await withTestGateway { gateway in
            for index in 0..<5 {
                try await gateway.append("s-\(index)", events: [("t", "\(index)")])
            }
            let first = try await gateway.get("/streams?limit=2")
            #expect(first.status == .ok)
            let page = try first.jsonObject()
            #expect(Self.ids(page) == ["s-0", "s-1"])
            let next = try #require(page["next"] as? String)
            #expect(next == "http://127.0.0.1:\(gateway.port)/streams?after=s-1&limit=2")
            let second = try await gateway.get(String(next.dropFirst("http://127.0.0.1:\(gateway.port)".count)))
            #expect(Self.ids(try second.jsonObject()) == ["s-2", "s-3"])
            // HEAD: GET's head without its body, so the next request on the connection is answered as sent.
            let raw = try await RawTCPConnection.connect(port: gateway.port)
            let request = "/streams?limit=2 HTTP/1.1\r\nHost: x\r\n\r\n"
            try await raw.send("HEAD " + request + "GET " + request)
            let head = try #require(try await raw.readUntil("\r\n\r\n"))
            #expect(head.hasPrefix("HTTP/1.1 200"), "\(head)")
            let get = try #require(try await raw.readUntil("\r\n\r\n"))
            #expect(get.hasPrefix("HTTP/1.1 200"), "\(get)")
            await raw.close()
            let etag = try #require(first.headers.first(name: "ETag"))
            #expect(try await gateway.get("/streams?limit=2", headers: [("If-None-Match", etag)]).status == .notModified)
            try await gateway.append("s-0", events: [("t", "9")])
            let changed = try await gateway.get("/streams?limit=2", headers: [("If-None-Match", etag)])
            #expect(changed.status == .ok, "an append changes the page")
            #expect((try changed.jsonObject()["streams"] as? [[String: Any]])?.first?["aggregate_version"] as? Int == 1)
            #expect(try await gateway.get("/streams?limit=nope").status == .badRequest)
            #expect(try await gateway.request(.POST, "/streams", json: "{}").status == .methodNotAllowed)
        }
    }
}
