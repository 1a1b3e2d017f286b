import FluxConsumer
import FluxCore
import FluxGateway
import Foundation
import NIOCore
import Testing

@Suite struct FeedEndpointTests {
    /// A gateway over a store seeded with `count` events (seeded first: nothing is left running when seeding fails).
    private func seeded(_ count: Int, store: any EventStore = InMemoryEventStore()) async throws -> TestGateway {
        for index in 0..<count {
            let name = index % 2 == 0 ? "Account" : "Order"
            let type = index % 3 == 0 ? "t.Created" : "t.Changed"
            try await store.append(
                AppendRequest(
                    aggregateID: "\(name.lowercased())-\(index % 4)", aggregateName: name, expectedVersion: .any,
                    events: [NewEvent(eventType: type, payload: EventPayload(trustedJSON: Array("{\"i\":\(index)}".utf8)))]
                ))
        }
        return try await TestGateway.start(store: store)
    }

    @Test func legacyFeedHasTheOriginalShape() async throws {
        try await withTestGateway(await seeded(3)) { gateway in
            let response = try await gateway.get("/events?offset=0", headers: [("Host", "feed.local:9999")])
            #expect(response.status == .ok)
            let body = try response.jsonObject()
            #expect(Set(body.keys) == ["description", "events"])
            #expect(body["description"] as? String == "event feed")
            let events = try #require(body["events"] as? [[String: Any]])
            #expect(events.count == 3)
            let first = events[0]
            #expect(first["event_id"] is String)
            #expect(first["url"] as? String == "http://feed.local:9999/events/\(first["event_id"] as! String)")
            #expect(first["aggregate_name"] as? String == "Account")
            #expect(first["aggregate_version"] as? Int == 0)
            #expect(first["event_type"] as? String == "t.Created")
            #expect((first["created"] as? String)?.count == 24)
            #expect(first["position"] as? Int == 1)
            #expect(first["payload"] == nil, "the original feed has no payloads")

            let later = try await gateway.get("/events?offset=2")
            let laterEvents = try #require(try later.jsonObject()["events"] as? [[String: Any]])
            #expect(laterEvents.map { $0["position"] as? Int } == [3])
            let beyond = try await gateway.get("/events?offset=50")
            #expect(try beyond.jsonObject()["events"] as? [Any] != nil, "an empty feed is an empty list, never null")
            #expect(beyond.text.contains(#""events":[]"#))
        }
    }

    /// The original server's page size (20): its consumer skips the rest of a page when an entry fails to load, so
    /// a larger page loses more on a server stop. `limit` still raises it; the extended feed keeps its default.
    @Test func legacyPagesHoldTwentyEventsUnlessALimitIsGiven() async throws {
        try await withTestGateway(await seeded(130)) { gateway async throws in
            func count(_ target: String) async throws -> Int {
                try #require(try await gateway.get(target).jsonObject()["events"] as? [Any]).count
            }
            #expect(try await count("/events?offset=0") == 20)
            #expect(try await count("/events?offset=120") == 10)
            #expect(try await count("/events?offset=0&limit=50") == 50)
            #expect(try await count("/events?after=0") == 100)
        }
    }

    @Test func extendedFeedPagesWithNextHeadAndEpoch() async throws {
        try await withTestGateway(await seeded(25)) { gateway in
            var target = "/events?after=0&limit=10"
            var positions: [Int] = []
            for _ in 0..<3 {
                let body = try await gateway.get(target).jsonObject()
                #expect(body["head"] as? Int == 25)
                #expect(body["epoch"] as? String == gateway.store.epoch.rawValue)
                positions += (body["events"] as? [[String: Any]] ?? []).compactMap { $0["position"] as? Int }
                let next = try #require(body["next"] as? String)
                #expect(next.hasPrefix("http://127.0.0.1:\(gateway.port)/events?after="))
                target = String(next.dropFirst("http://127.0.0.1:\(gateway.port)".count))
            }
            #expect(positions == Array(1...25))
            #expect(target == "/events?after=25&limit=10")
        }
    }

    @Test func embedsPayloadsAndFilters() async throws {
        try await withTestGateway(await seeded(12)) { gateway in
            let body = try await gateway.get("/events?after=0&embed=payload&aggregate_name=Order&event_type=t.Created").jsonObject()
            let events = try #require(body["events"] as? [[String: Any]])
            // Order events are the odd indices; t.Created the multiples of 3: 3 and 9.
            #expect(events.compactMap { ($0["payload"] as? [String: Any])?["i"] as? Int } == [3, 9])
            let repeated = try await gateway.get("/events?after=0&event_type=t.Created&event_type=t.Changed&aggregate_id=account-0").jsonObject()
            #expect((repeated["events"] as? [[String: Any]])?.compactMap { $0["position"] as? Int } == [1, 5, 9])
            let next = try #require(repeated["next"] as? String)
            #expect(next.contains("aggregate_id=account-0") && next.contains("event_type=t.Created"))
        }
    }

    @Test(arguments: [
        "/events?after=-1", "/events?after=abc", "/events?offset=-3", "/events?offset=1.5", "/events?limit=0",
        "/events?limit=-5", "/events?limit=ten", "/events?embed=body", "/events?offset=1&after=1", "/events?wait=-1",
        "/events?wait=x", "/events?after=%zz", "/events?after=99999999999999999999999",
    ])
    func badParametersAre400(_ target: String) async throws {
        try await withTestGateway(await seeded(1)) { gateway in
            let response = try await gateway.get(target)
            #expect(response.status == .badRequest, "\(target)")
            #expect(try response.jsonObject()["error"] as? String == "bad_request", "\(target)")
        }
    }

    @Test func limitIsCappedAt1000() async throws {
        try await withTestGateway(await seeded(0)) { gateway in
            for _ in 0..<3 {
                let events = (0..<500).map { _ in NewEvent(eventType: "t", payload: .null) }
                try await gateway.store.append(AppendRequest(aggregateID: "bulk", aggregateName: "B", expectedVersion: .any, events: events))
            }
            let body = try await gateway.get("/events?after=0&limit=5000").jsonObject()
            #expect((body["events"] as? [Any])?.count == 1000)
            #expect((body["next"] as? String)?.hasSuffix("after=1000&limit=1000") == true)
        }
    }

    @Test func fullPagesAreImmutableAndTheHeadPageRevalidates() async throws {
        try await withTestGateway(await seeded(15)) { gateway in
            let full = try await gateway.get("/events?after=0&limit=10")
            #expect(full.headers.first(name: "Cache-Control") == "public, max-age=31536000, immutable")
            let headPage = try await gateway.get("/events?after=10&limit=10")
            #expect(headPage.headers.first(name: "Cache-Control") == "no-cache")
            let etag = try #require(headPage.headers.first(name: "ETag"))
            let notModified = try await gateway.get("/events?after=10&limit=10", headers: [("If-None-Match", etag)])
            #expect(notModified.status == .notModified)
            #expect(notModified.body.readableBytes == 0)
            try await gateway.store.append(AppendRequest(aggregateID: "x", aggregateName: "X", expectedVersion: .any, events: [NewEvent(eventType: "t", payload: .null)]))
            let changed = try await gateway.get("/events?after=10&limit=10", headers: [("If-None-Match", etag)])
            #expect(changed.status == .ok)
            #expect(changed.headers.first(name: "ETag") != etag)
        }
    }

    @Test func longPollWaitsForTheNextEvent() async throws {
        try await withTestGateway(await seeded(2)) { gateway in
            let started = ContinuousClock.now
            async let response = gateway.get("/events?after=2&wait=60&embed=payload")
            try await Task.sleep(for: .milliseconds(300))
            try await gateway.append("late", events: [("t.Late", #"{"late":true}"#)])
            let body = try await response.jsonObject()
            let elapsed = ContinuousClock.now - started
            #expect((body["events"] as? [[String: Any]])?.first?["event_type"] as? String == "t.Late")
            #expect(elapsed >= .milliseconds(250) && elapsed < .seconds(30), "answered when the event came, not at the 60 s timeout: \(elapsed)")
        }
    }

    @Test func longPollWithAFilterIgnoresOtherEventsAndTimesOut() async throws {
        try await withTestGateway(await seeded(0)) { gateway in
            let started = ContinuousClock.now
            async let response = gateway.get("/events?after=0&wait=1&event_type=t.Wanted")
            try await Task.sleep(for: .milliseconds(200))
            try await gateway.append("other", events: [("t.Other", "1")])
            let body = try await response.jsonObject()
            #expect((body["events"] as? [Any])?.isEmpty == true)
            #expect(ContinuousClock.now - started >= .milliseconds(900))
            #expect((body["next"] as? String)?.contains("after=1&") == true, "the next page skips what was already scanned")
        }
    }

    @Test func publicURLAndForwardedHeadersShapeEventURLs() async throws {
        try await withTestGateway(await TestGateway.start(publicURL: "https://feed.example.com/")) { configured in
            try await configured.append("a", events: [("t", "1")])
            let first = try await configured.get("/events?offset=0").jsonObject()
            let url = try #require((first["events"] as? [[String: Any]])?.first?["url"] as? String)
            #expect(url.hasPrefix("https://feed.example.com/events/"))

            let forwarded = [("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "public.example.org")]
            try await withTestGateway(await TestGateway.start { $0.trustedProxies = ["127.0.0.1"] }) { proxied in
                try await proxied.append("a", events: [("t", "1")])
                let body = try await proxied.get("/events?offset=0", headers: forwarded).jsonObject()
                let proxiedURL = try #require((body["events"] as? [[String: Any]])?.first?["url"] as? String)
                #expect(proxiedURL.hasPrefix("https://public.example.org/events/"))
            }
        }
    }

    /// A client that is not a trusted proxy cannot choose the host of envelope URLs in pages a shared cache keeps
    /// (cache poisoning), nor pass the WebSocket origin check with a forged X-Forwarded-Host.
    @Test func forwardedHeadersFromAnUntrustedClientAreIgnored() async throws {
        try await withTestGateway(await seeded(1)) { gateway in
            let forwarded = [("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "attacker.example")]
            let response = try await gateway.get("/events?offset=0&limit=1", headers: forwarded)
            let text = String(buffer: response.body)
            #expect(!text.contains("attacker.example"), "\(text)")
            #expect(text.contains("http://127.0.0.1:\(gateway.port)/events/"), "\(text)")
            let event = try #require(try await gateway.store.read(after: .start, limit: 1).first)
            let single = try await gateway.get("/events/\(event.eventID)", headers: forwarded)
            #expect(!String(buffer: single.body).contains("attacker.example"))
        }
    }
}
