import FluxCore
@testable import FluxGateway
import FluxTesting
import Foundation
import NIOHTTP1
import Testing

/// Bearer tokens and scopes through a real gateway: 401 without or with a bad token, 403 without the scope,
/// aggregate-restricted reading and writing, the push channel and SSE refused at the handshake.
@Suite struct GatewayAccessTests {
    static let reader = "reader-token-0123456789"
    static let writer = "writer-token-0123456789"
    static let accountOnly = "account-token-0123456789"
    static let metrics = "metrics-token-0123456789"
    static let blindWriter = "blind-writer-token-0123456789"

    func gateway(jwt: AccessControl.JWTSettings? = nil) async throws -> TestGateway {
        let access = try await AccessControl(
            tokens: [
                .init(name: "reader", token: Self.reader, scopes: ["read"]),
                .init(name: "writer", token: Self.writer, scopes: ["write", "read"]),
                .init(name: "account", token: Self.accountOnly, scopes: ["read:Account", "write:Account"]),
                .init(name: "metrics", token: Self.metrics, scopes: ["metrics"]),
                .init(name: "blind", token: Self.blindWriter, scopes: ["write:Account"]),
            ],
            jwt: jwt
        )
        return try await TestGateway.start(accessControl: access)
    }

    func bearer(_ token: String) -> [(String, String)] { [("Authorization", "Bearer \(token)")] }

    @Test func requestsWithoutATokenGet401AndHealthStaysOpen() async throws {
        try await withTestGateway(await gateway()) { gateway in
            let response = try await gateway.get("/events?after=0")
            #expect(response.status == .unauthorized)
            #expect(try response.jsonObject()["error"] as? String == "unauthorized")
            #expect(response.headers.first(name: "WWW-Authenticate") == "Bearer realm=\"fluxgate\"")
            let bad = try await gateway.get("/events?after=0", headers: bearer("wrong-token-0123456789"))
            #expect(bad.status == .unauthorized)
            #expect(bad.headers.first(name: "WWW-Authenticate")?.contains("invalid_token") == true)
            #expect(try await gateway.append("a-1", events: [("t.E", "1")]).status == .unauthorized)
            #expect(try await gateway.get("/health").status == .ok)
            #expect(try await gateway.get("/").status == .ok, "the web UI's page itself is public; its data needs a token")
            #expect(try await gateway.store.head() == .start, "nothing was stored")
        }
    }

    @Test func scopesDecideWhatATokenMayDo() async throws {
        try await withTestGateway(await gateway()) { gateway in
            let refused = try await gateway.append("a-1", events: [("t.E", "1")], headers: bearer(Self.reader))
            #expect(refused.status == .forbidden)
            #expect(try refused.jsonObject()["error"] as? String == "forbidden")
            #expect((try refused.jsonObject()["message"] as? String)?.contains("no write scope") == true)
            #expect(try await gateway.append("a-1", events: [("t.E", "1")], headers: bearer(Self.writer)).status == .created)
            #expect(try await gateway.get("/events?after=0", headers: bearer(Self.reader)).status == .ok)
            #expect(try await gateway.get("/events?after=0", headers: bearer(Self.metrics)).status == .forbidden)
            #expect(try await gateway.get("/metrics", headers: bearer(Self.reader)).status == .forbidden)
            #expect(try await gateway.get("/metrics").status == .unauthorized)
            #expect(try await gateway.get("/metrics", headers: bearer(Self.metrics)).status == .ok)
            // The query parameter works as well as the header (browsers' WebSocket and EventSource).
            #expect(try await gateway.get("/events?after=0&access_token=\(Self.reader)").status == .ok)
        }
    }

    @Test func anAggregateRestrictedTokenReadsAndWritesOnlyThoseAggregates() async throws {
        try await withTestGateway(await gateway()) { gateway in
            #expect(try await gateway.append("acc-1", name: "Account", events: [("t.E", "1")], headers: bearer(Self.accountOnly)).status == .created)
            let other = try await gateway.append("ord-1", name: "Order", events: [("t.E", "2")], headers: bearer(Self.accountOnly))
            #expect(other.status == .forbidden)
            #expect(try await gateway.store.head() == Position(1), "the refused append stored nothing")
            #expect(try await gateway.append("ord-1", name: "Order", events: [("t.E", "2")], headers: bearer(Self.writer)).status == .created)
            #expect(try await gateway.append("acc-2", name: "Account", events: [("t.E", "3")], headers: bearer(Self.writer)).status == .created)

            // The feed shows only Account events; asking for Order is refused.
            let feed = try await gateway.get("/events?after=0&limit=2", headers: bearer(Self.accountOnly))
            let events = try #require(try feed.jsonObject()["events"] as? [[String: Any]])
            #expect(events.map { $0["aggregate_name"] as? String } == ["Account", "Account"])
            #expect(feed.headers.first(name: "Cache-Control") == "private, max-age=31536000, immutable", "a full page, but not for shared caches")
            #expect(try await gateway.get("/events?after=0&aggregate_name=Order", headers: bearer(Self.accountOnly)).status == .forbidden)
            #expect(try await gateway.get("/events?offset=0", headers: bearer(Self.accountOnly)).status == .ok)

            let orderID = try #require(try await gateway.get("/events?after=1&limit=1", headers: bearer(Self.writer)).jsonObject()["events"] as? [[String: Any]])[0]["event_id"] as? String
            // What the token may not read is answered as what does not exist: the same 404, so it cannot probe ids.
            let hidden = try await gateway.get("/events/\(try #require(orderID))", headers: bearer(Self.accountOnly))
            let missing = try await gateway.get("/events/no-such-event", headers: bearer(Self.accountOnly))
            #expect(hidden.status == .notFound && missing.status == .notFound)
            #expect(try hidden.jsonObject()["error"] as? String == "not_found")
            #expect(try await gateway.get("/events/\(orderID!)", headers: bearer(Self.writer)).status == .ok)
            for target in ["/streams/ord-1", "/streams/ord-1?from_version=5", "/streams/ord-1?from_version=1", "/streams/no-such-stream?from_version=5"] {
                #expect(try await gateway.get(target, headers: bearer(Self.accountOnly)).status == .notFound, "\(target)")
            }
            #expect(try await gateway.get("/streams/acc-1", headers: bearer(Self.accountOnly)).status == .ok)
            #expect(try await gateway.get("/streams/acc-1?from_version=5", headers: bearer(Self.accountOnly)).status == .ok, "its own stream, past its end")
        }
    }

    /// The stream listing needs a read scope, and a token restricted to some aggregate names lists only their streams:
    /// the others are not named, not even as a page's cursor.
    @Test func theStreamListingShowsOnlyWhatATokenMayRead() async throws {
        try await withTestGateway(await gateway()) { gateway in
            for (id, name) in [("acc-1", "Account"), ("acc-2", "Order"), ("acc-3", "Account"), ("acc-4", "Order"), ("acc-5", "Order"), ("acc-6", "Account")] {
                #expect(try await gateway.append(id, name: name, events: [("t.E", "1")], headers: bearer(Self.writer)).status == .created)
            }
            #expect(try await gateway.get("/streams").status == .unauthorized)
            #expect(try await gateway.get("/streams", headers: bearer("wrong-token-0123456789")).status == .unauthorized)
            #expect(try await gateway.get("/streams", headers: bearer(Self.metrics)).status == .forbidden)
            #expect(try await gateway.get("/streams", headers: bearer(Self.blindWriter)).status == .forbidden, "write:Account is not read")
            func ids(_ target: String, _ token: String) async throws -> (ids: [String], next: String?) {
                let body = try await gateway.get(target, headers: bearer(token)).jsonObject()
                let ids = (body["streams"] as? [[String: Any]] ?? []).compactMap { $0["aggregate_id"] as? String }
                return (ids, (body["next"] as? String).map { String($0.dropFirst("http://127.0.0.1:\(gateway.port)".count)) })
            }
            #expect(try await ids("/streams", Self.reader).ids == ["acc-1", "acc-2", "acc-3", "acc-4", "acc-5", "acc-6"])
            let first = try await ids("/streams?limit=2", Self.accountOnly)
            #expect(first.ids == ["acc-1", "acc-3"])
            #expect(first.next == "/streams?after=acc-3&limit=2")
            let second = try await ids(try #require(first.next), Self.accountOnly)
            #expect(second.ids == ["acc-6"], "passing over acc-4 and acc-5, which it may not read")
            #expect(second.next == nil)
            #expect(try await ids("/streams?access_token=\(Self.accountOnly)", Self.accountOnly).ids.count == 3)
        }
    }

    /// A scoped writer cannot write into another aggregate's stream (a stream has one aggregate name for life),
    /// and a refused append tells it nothing it may not read: not the stream's name, not its version.
    @Test func aRefusedAppendTellsACallerNothingItMayNotRead() async throws {
        try await withTestGateway(await gateway()) { gateway in
            #expect(try await gateway.append("ord-1", name: "Order", events: [("t.E", "1"), ("t.E", "2")], headers: bearer(Self.writer)).status == .created)
            let intruder = try await gateway.append("ord-1", name: "Account", events: [("t.E", "3")], headers: bearer(Self.accountOnly))
            #expect(intruder.status == .conflict)
            let body = try intruder.jsonObject()
            #expect(body["error"] as? String == "aggregate_name_mismatch")
            #expect(!(body["message"] as? String ?? "Order").contains("Order"), "\(body)")
            #expect(try await gateway.store.readStream("ord-1", fromVersion: 0, limit: 10).count == 2, "nothing was stored")
            // The stream's own writer, who may read it, is told why.
            let own = try await gateway.append("ord-1", name: "Account", events: [("t.E", "3")], headers: bearer(Self.writer))
            #expect((try own.jsonObject()["message"] as? String)?.contains("Order") == true)

            // A writer that may not read learns that its append conflicts, not the version it conflicts with.
            #expect(try await gateway.append("acc-1", name: "Account", events: [("t.E", "1")], headers: bearer(Self.blindWriter)).status == .created)
            let stale = try await gateway.append("acc-1", name: "Account", expected: "5", events: [("t.E", "2")], headers: bearer(Self.blindWriter))
            #expect(stale.status == .conflict)
            #expect(try stale.jsonObject()["current_version"] == nil, "\(stale.text)")
            let reader = try await gateway.append("acc-1", name: "Account", expected: "5", events: [("t.E", "2")], headers: bearer(Self.accountOnly))
            #expect(try reader.jsonObject()["current_version"] as? Int == 0, "a writer that may read the stream gets its version")
        }
    }

    /// The original flux consumer cannot send a bearer token, but Go's HTTP client sends `Authorization: Basic` for a
    /// URL with userinfo (`http://feed:TOKEN@host/events`): the password is the token, and the entry `url`s it is
    /// handed carry the same userinfo, so fetching them authenticates too (the pages are private to caches).
    @Test func aTokenAsTheBasicPasswordWorksForTheOriginalConsumer() async throws {
        try await withTestGateway(await gateway()) { gateway in
            try await gateway.append("acc-1", name: "Account", events: [("t.E", #"{"n":1}"#)], headers: bearer(Self.writer))
            func basic(_ user: String, _ password: String) -> [(String, String)] {
                [("Authorization", "Basic " + Data("\(user):\(password)".utf8).base64EncodedString())]
            }
            let page = try await gateway.get("/events?offset=0&limit=1", headers: basic("feed", Self.reader))
            #expect(page.status == .ok)
            #expect(page.headers.first(name: "Cache-Control")?.hasPrefix("private") == true)
            let url = try #require((try page.jsonObject()["events"] as? [[String: Any]])?.first?["url"] as? String)
            #expect(url.hasPrefix("http://feed:\(Self.reader)@127.0.0.1:\(gateway.port)/events/"), "\(url)")
            // What Go's client does with that URL: the userinfo becomes the Basic header again.
            let parsed = try #require(URL(string: url))
            let entry = try await gateway.get(parsed.path, headers: basic(try #require(parsed.user), try #require(parsed.password)))
            #expect(entry.status == .ok && entry.text == #"{"n":1}"#, "\(entry.status) \(entry.text)")
            #expect(try await gateway.get("/events?offset=0", headers: basic("feed", "wrong-token")).status == .unauthorized)
            #expect(try await gateway.get("/events?offset=0", headers: basic("feed", "")).status == .unauthorized)
            #expect(try await gateway.get("/events?offset=0", headers: [("Authorization", "Basic !!!")]).status == .unauthorized)
            // A bearer caller's URLs carry nothing.
            let plain = try await gateway.get("/events?offset=0&limit=1", headers: bearer(Self.reader))
            #expect(!plain.text.contains("@127.0.0.1"))
        }
    }

    @Test func subscriptionsAreRefusedAtTheHandshakeAndFilteredByScope() async throws {
        try await withTestGateway(await gateway()) { gateway in
            let anonymous = try await PushChannelTestClient(port: gateway.port, query: "after=0")
            #expect(anonymous.status == 401, "\(anonymous.responseHead)")
            await anonymous.close()
            let sse = try await gateway.get("/events/subscribe?after=0", headers: [("Accept", "text/event-stream")])
            #expect(sse.status == .unauthorized)

            try await gateway.append("acc-1", name: "Account", events: [("t.E", "1")], headers: bearer(Self.writer))
            try await gateway.append("ord-1", name: "Order", events: [("t.E", "2")], headers: bearer(Self.writer))
            let subscriber = try await PushChannelTestClient(port: gateway.port, query: "after=0&access_token=\(Self.accountOnly)")
            #expect(subscriber.status == 101)
            try await gateway.append("ord-1", name: "Order", events: [("t.E", "3")], headers: bearer(Self.writer))
            try await gateway.append("acc-1", name: "Account", events: [("t.E", "4")], headers: bearer(Self.writer))
            try await subscriber.read(untilPositions: 2)
            #expect(subscriber.positions == [1, 4])
            await subscriber.close()

            let forbidden = try await PushChannelTestClient(port: gateway.port, query: "after=0&aggregate_name=Order", extraHeaders: ["Authorization: Bearer \(Self.accountOnly)"])
            #expect(forbidden.status == 403, "refused at the handshake: \(forbidden.responseHead)")
            await forbidden.close()
        }
    }

    @Test func aSubscriptionEndsWhenItsJWTExpires() async throws {
        let issuer = TestIssuer()
        try await withTestGateway(await gateway(jwt: .init(hmacSecrets: [TestIssuer.secret], leeway: .zero))) { gateway in
            // Long enough to still be valid at the handshake on a loaded machine.
            let token = try await issuer.hs256(TestClaims(scope: "read", expiresIn: 20))
            let subscriber = try await PushChannelTestClient(port: gateway.port, query: "after=0&access_token=\(token)")
            try #require(subscriber.status == 101, "\(subscriber.responseHead)")
            try await subscriber.readUntilClosed(timeout: .seconds(120))
            #expect(subscriber.closeCode == 1008)
            #expect(subscriber.closeReason.contains("access token expired"))
            await subscriber.close()
        }
    }
}
