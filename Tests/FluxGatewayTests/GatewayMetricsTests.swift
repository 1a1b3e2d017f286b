import FluxConsumer
import FluxCore
import FluxGateway
import FluxTesting
import FluxWire
import Logging
import Metrics
import NIOCore
import NIOHTTP1
import Testing

/// One sample line of the Prometheus text format: `name{label="value",…} value`.
struct PrometheusSample: Hashable {
    var name: String
    var labels: [String: String]
    var value: Double
}

/// A strict reader of the Prometheus text exposition format (0.0.4), enough to check what `/metrics` serves:
/// every line is `# HELP`, `# TYPE`, or a sample whose family was typed before it.
struct PrometheusText {
    var samples: [PrometheusSample] = []
    var types: [String: String] = [:]

    init(_ text: String) throws {
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) where !line.isEmpty {
            if line.hasPrefix("# HELP ") { continue }
            if line.hasPrefix("# TYPE ") {
                let parts = line.split(separator: " ")
                guard parts.count == 4, ["counter", "gauge", "histogram", "summary", "untyped"].contains(parts[3]) else {
                    throw TestFailure("bad TYPE line: \(line)")
                }
                types[String(parts[2])] = String(parts[3])
                continue
            }
            guard let match = line.wholeMatch(of: /([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)/) else {
                throw TestFailure("not a sample line: \(line)")
            }
            let name = String(match.1)
            guard let value = Double(match.3) ?? (match.3 == "+Inf" ? .infinity : nil) else {
                throw TestFailure("bad value in: \(line)")
            }
            var labels: [String: String] = [:]
            if let body = match.2, !body.isEmpty {
                let pairs = body.matches(of: /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)/)
                for pair in pairs { labels[String(pair.1)] = String(pair.2) }
                guard pairs.map({ String($0.0) }).joined() == body, labels.count == pairs.count else {
                    throw TestFailure("bad labels in: \(line)")
                }
            }
            let family = ["_bucket", "_sum", "_count"].first(where: { name.hasSuffix($0) && types[String(name.dropLast($0.count))] == "histogram" })
                .map { String(name.dropLast($0.count)) } ?? name
            guard types[family] != nil else { throw TestFailure("sample before its TYPE line: \(line)") }
            samples.append(PrometheusSample(name: name, labels: labels, value: value))
        }
    }

    /// The value of the one sample with this name and exactly these labels; `nil` when there is none.
    func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        samples.first(where: { $0.name == name && $0.labels == labels })?.value
    }

    /// Every sample of a name.
    func all(_ name: String) -> [PrometheusSample] { samples.filter { $0.name == name } }
}

extension TestGateway {
    /// `GET /metrics`, checked and parsed.
    func metrics(on connection: HTTPConnection? = nil) async throws -> PrometheusText {
        let response: HTTPResponse
        if let connection {
            response = try await connection.request(.GET, "/metrics")
        } else {
            response = try await get("/metrics")
        }
        #expect(response.status == .ok)
        #expect(response.headers.first(name: "Content-Type") == "text/plain; version=0.0.4; charset=utf-8")
        return try PrometheusText(response.text)
    }
}

@Suite struct GatewayMetricsTests {
    @Test func appendsFeedReadsAndASubscriptionShowInMetrics() async throws {
        try await withTestGateway { gateway in
            // Two appends, then one with a stale expected version.
            #expect(try await gateway.append("acc-1", expected: "-1", events: [("a.Opened", "{}"), ("a.Credited", "{\"n\":1}")]).status == .created)
            #expect(try await gateway.append("acc-1", expected: "1", events: [("a.Credited", "{\"n\":2}")]).status == .created)
            #expect(try await gateway.append("acc-1", expected: "0", events: [("a.Credited", "{\"n\":3}")]).status == .conflict)
            #expect(try await gateway.get("/events?after=0").status == .ok)
            #expect(try await gateway.get("/events/no-such-id").status == .notFound)

            // A subscriber: three events from the store, two live, an ack, then a clean close.
            let client = try await PushChannelTestClient(port: gateway.port, query: "after=0")
            #expect(client.status == 101)
            try await client.read(untilPositions: 3)
            #expect(try await gateway.append("acc-2", expected: "-1", events: [("a.Opened", "{}"), ("a.Credited", "{\"n\":4}")]).status == .created)
            try await client.read(untilPositions: 5)
            #expect(client.positions == [1, 2, 3, 4, 5])
            try await client.send(text: PushAcknowledgement(position: Position(5)).json)
            try await client.sendClose(code: 1000)
            try await client.readUntilClosed()
            #expect(client.closeCode == 1000)
            await client.close()

            let metrics = try await gateway.metrics()
            #expect(metrics.types["fluxgate_http_requests_total"] == "counter")
            #expect(metrics.types["fluxgate_http_request_duration_seconds"] == "histogram")
            #expect(metrics.value("fluxgate_appends_total") == 3)
            #expect(metrics.value("fluxgate_appended_events_total") == 5)
            #expect(metrics.value("fluxgate_append_conflicts_total") == 1)
            #expect(metrics.value("fluxgate_head_position") == 5)
            let streams = "/streams/{aggregate_id}"
            #expect(metrics.value("fluxgate_http_requests_total", ["route": streams, "method": "POST", "status": "201"]) == 3)
            #expect(metrics.value("fluxgate_http_requests_total", ["route": streams, "method": "POST", "status": "409"]) == 1)
            #expect(metrics.value("fluxgate_http_requests_total", ["route": "/events", "method": "GET", "status": "200"]) == 1)
            #expect(metrics.value("fluxgate_http_requests_total", ["route": "/events/{id}", "method": "GET", "status": "404"]) == 1)
            #expect(metrics.value("fluxgate_http_requests_total", ["route": "/events/subscribe", "method": "GET", "status": "101"]) == 1)
            // Histograms per route template: cumulative buckets ending in +Inf, which equals the count.
            for (route, count) in [(streams, 4.0), ("/events", 1), ("/events/{id}", 1), ("/events/subscribe", 1)] {
                let buckets = metrics.all("fluxgate_http_request_duration_seconds_bucket").filter { $0.labels["route"] == route }
                #expect(buckets.count == 17, "\(route)")
                #expect(buckets.map(\.value) == buckets.map(\.value).sorted(), "\(route): buckets are cumulative")
                #expect(buckets.last?.labels["le"] == "+Inf")
                #expect(buckets.last?.value == count, "\(route)")
                #expect(metrics.value("fluxgate_http_request_duration_seconds_count", ["route": route]) == count)
            }
            #expect(metrics.value("fluxgate_store_operation_duration_seconds_count", ["operation": "append"]) == 4)
            #expect((metrics.value("fluxgate_store_operation_duration_seconds_count", ["operation": "read"]) ?? 0) >= 2)
            // Subscribers: every event delivered once, the gauge back to 0, the close counted.
            #expect(metrics.value("fluxgate_deliveries_total") == 5)
            #expect((metrics.value("fluxgate_subscriber_bytes_out_total") ?? 0) > 500)
            #expect(metrics.value("fluxgate_subscribers", ["transport": "websocket"]) == 0)
            #expect(metrics.value("fluxgate_subscribers", ["transport": "sse"]) == 0)
            #expect(metrics.value("fluxgate_websocket_closes_total", ["code": "1000"]) == 1)
            #expect(metrics.value("fluxgate_subscriber_lag_events_count", ["position": "acked"]) == 1)
            #expect(metrics.value("fluxgate_subscriber_lag_events_bucket", ["position": "acked", "le": "0.0"]) == 1, "acked the head: no lag")
            #expect((metrics.value("fluxgate_subscriber_lag_events_count", ["position": "delivered"]) ?? 0) >= 1)
            // Raw paths never become labels.
            #expect(!metrics.samples.contains { $0.labels.values.contains { $0.contains("acc-") || $0.contains("no-such-id") } })

            // The scrape itself is counted once it is answered.
            let again = try await gateway.metrics()
            #expect(again.value("fluxgate_http_requests_total", ["route": "/metrics", "method": "GET", "status": "200"]) == 1)
        }
    }

    @Test func aSubscriberWhoseConnectionDropsIsCounted1006AndLeavesTheGauge() async throws {
        try await withTestGateway { gateway in
            try await append(gateway.store, "x", count: 2)
            let client = try await PushChannelTestClient(port: gateway.port, query: "after=0")
            try await client.read(untilPositions: 2)
            let during = try await gateway.metrics()
            #expect(during.value("fluxgate_subscribers", ["transport": "websocket"]) == 1)
            // An offset from the future: accepted, then closed with 4409 (no subscription runs).
            let refused = try await PushChannelTestClient(port: gateway.port, query: "after=99")
            try await refused.readUntilClosed()
            #expect(refused.closeCode == 4409)
            await refused.close()
            let afterRefusal = try await gateway.metrics()
            #expect(afterRefusal.value("fluxgate_websocket_closes_total", ["code": "4409"]) == 1)
            #expect(afterRefusal.value("fluxgate_subscribers", ["transport": "websocket"]) == 1)
            await client.close()
            // The server notices the dropped connection on its own time: wait for the count, not for a clock.
            var closes: Double?
            for _ in 0..<200 where closes == nil {
                closes = try await gateway.metrics().value("fluxgate_websocket_closes_total", ["code": "1006"])
                if closes == nil { try await Task.sleep(for: .milliseconds(10)) }
            }
            #expect(closes == 1)
            #expect(try await gateway.metrics().value("fluxgate_subscribers", ["transport": "websocket"]) == 0)
        }
    }

    @Test func serverSentEventsSubscribersAreCountedToo() async throws {
        try await withTestGateway { gateway in
            try await append(gateway.store, "x", count: 3)
            let connection = try await RawTCPConnection.connect(port: gateway.port)
            try await connection.send("GET /events/subscribe?after=0 HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
            #expect(try await connection.readUntil("event: caught_up") != nil)
            let during = try await gateway.metrics()
            #expect(during.value("fluxgate_subscribers", ["transport": "sse"]) == 1)
            #expect(during.value("fluxgate_deliveries_total") == 3)
            #expect((during.value("fluxgate_subscriber_bytes_out_total") ?? 0) > 300)
            await connection.close()
            // The server notices the closed stream on its own time: wait for the gauge, not for a clock.
            var subscribers: Double?
            for _ in 0..<200 {
                subscribers = try await gateway.metrics().value("fluxgate_subscribers", ["transport": "sse"])
                if subscribers == 0 { break }
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(subscribers == 0)
        }
    }

    @Test func twoServersInOneProcessKeepTheirOwnMetrics() async throws {
        try await withTestGateway { first in
            try await withTestGateway { second in
                #expect(try await first.append("a", events: [("t.E", "1"), ("t.E", "2")]).status == .created)
                // swift-metrics through the server's factory land in that server's registry only.
                Counter(label: "app_orders_total", dimensions: [("kind", "test")], factory: first.server.metrics.factory).increment(by: 3)
                let one = try await first.metrics()
                let two = try await second.metrics()
                #expect(one.value("fluxgate_appends_total") == 1)
                #expect(one.value("fluxgate_appended_events_total") == 2)
                #expect(two.value("fluxgate_appends_total") == 0)
                #expect(two.value("fluxgate_appended_events_total") == 0)
                #expect(two.all("fluxgate_http_requests_total").isEmpty)
                #expect(one.value("app_orders_total", ["kind": "test"]) == 3)
                #expect(two.value("app_orders_total", ["kind": "test"]) == nil)
            }
        }
    }

    /// An idempotent retry is an append request, but it stores no new events: the events counter says what was stored.
    @Test func aRetryIsNotCountedAsNewEvents() async throws {
        try await withTestGateway { gateway in
            let body = #"{"aggregate_name": "A", "expected_version": -1, "events": [{"event_type": "t", "payload": 1, "event_id": "r-1"}, {"event_type": "t", "payload": 2, "event_id": "r-2"}]}"#
            #expect(try await gateway.request(.POST, "/streams/r", json: body).status == .created)
            #expect(try await gateway.request(.POST, "/streams/r", json: body).status == .created, "the retry answers as the first")
            let metrics = try await gateway.metrics()
            #expect(metrics.value("fluxgate_appends_total") == 2)
            #expect(metrics.value("fluxgate_appended_events_total") == 2, "2 stored, not 4")
        }
    }

    @Test func connectionsAndRefusalsAreCounted() async throws {
        try await withTestGateway(await TestGateway.start(maxConnections: 1)) { gateway in
            let held = try await gateway.connect()
            #expect(try await held.request(.GET, "/health").status == .ok)
            // A refused connection is answered 503 at once and closed, maybe before its request goes out.
            let refused = try await RawTCPConnection.connect(port: gateway.port)
            #expect(try await refused.readUntil("\r\n\r\n")?.hasPrefix("HTTP/1.1 503") == true)
            await refused.close()
            let metrics = try await gateway.metrics(on: held)
            #expect(metrics.value("fluxgate_connections") == 1)
            #expect(metrics.value("fluxgate_connections_refused_total") == 1)
            #expect(metrics.value("fluxgate_http_requests_total", ["route": "/health", "method": "GET", "status": "200"]) == 1)
            await held.close()
        }
    }

    @Test func metricsAnswersGetAndHeadOnly() async throws {
        try await withTestGateway { gateway in
            let raw = try await RawTCPConnection.connect(port: gateway.port)
            try await raw.send("HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            let head = try #require(try await raw.readUntil("\r\n\r\n"))
            #expect(head.hasPrefix("HTTP/1.1 200"), "\(head)")
            #expect(head.lowercased().contains("content-type: text/plain; version=0.0.4; charset=utf-8"))
            await raw.close()
            let post = try await gateway.request(.POST, "/metrics", json: "{}")
            #expect(post.status == .methodNotAllowed)
            #expect(post.headers.first(name: "Allow") == "GET, HEAD")
            let metrics = try await gateway.metrics()
            // HEAD is answered as GET and counted as HEAD.
            #expect(metrics.value("fluxgate_http_requests_total", ["route": "/metrics", "method": "HEAD", "status": "200"]) == 1)
            #expect(metrics.value("fluxgate_http_requests_total", ["route": "/metrics", "method": "POST", "status": "405"]) == 1)
        }
    }

    /// Answers the connection handler gives before a request arrived whole are counted too (not timed).
    @Test func refusedAndMalformedRequestsAreCounted() async throws {
        try await withTestGateway(await TestGateway.start(maxBodySize: 64)) { gateway in
            let tooLarge = try await gateway.request(.POST, "/streams/a", json: String(repeating: " ", count: 100))
            #expect(tooLarge.status == .payloadTooLarge)
            let raw = try await RawTCPConnection.connect(port: gateway.port)
            try await raw.send("NOT HTTP AT ALL\r\n\r\n")
            let answer = try #require(try await raw.readUntil("\r\n\r\n"))
            #expect(answer.hasPrefix("HTTP/1.1 400"), "\(answer)")
            await raw.close()
            let metrics = try await gateway.metrics()
            #expect(metrics.value("fluxgate_http_requests_total", ["route": "/streams/{aggregate_id}", "method": "POST", "status": "413"]) == 1)
            #expect(metrics.value("fluxgate_http_requests_total", ["route": "other", "method": "other", "status": "400"]) == 1)
            #expect(metrics.value("fluxgate_http_request_duration_seconds_count", ["route": "/streams/{aggregate_id}"]) == 0, "counted, not timed")
        }
    }

    @Test func unknownPathsShareOneRouteLabel() async throws {
        var logger = Logger(label: "test.router")
        logger.logLevel = .critical
        let metrics = GatewayMetrics()
        let router = GatewayRouter(store: InMemoryEventStore(), configuration: GatewayConfiguration(logger: logger), metrics: metrics)
        for path in ["/nope", "/a/b/c", "/x%zz", "/events/1/2", "/health", "/ui/app.js", "/", "/metrics"] {
            _ = await router.respond(to: GatewayRequest(method: .GET, uri: path, headers: ["Host": "localhost"], body: ByteBuffer()))
        }
        let text = try PrometheusText(String(decoding: metrics.exposition(), as: UTF8.self))
        let routes = Set(text.all("fluxgate_http_requests_total").compactMap { $0.labels["route"] })
        #expect(routes == ["other", "/health", "/ui", "/metrics"])
        #expect(text.value("fluxgate_http_request_duration_seconds_count", ["route": "other"]) == 4)
    }
}
