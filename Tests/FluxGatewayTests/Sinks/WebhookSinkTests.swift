import FluxConsumer
import FluxCore
import FluxGateway
import FluxSQLite
import FluxTesting
import Foundation
import NIOCore
import NIOHTTP1
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Webhook sinks over real sockets, delivering to `clients/python/webhook_receiver.py` (the `standardwebhooks`
/// package verifies every signature) in a child process.
@Suite struct WebhookSinkTests {
    static let script = TestPython.repositoryRoot.appendingPathComponent("clients/python/webhook_receiver.py")
    static let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

    /// A receiver in a child process, its port and its log file.
    struct Receiver {
        let child: ChildProcess
        let port: Int
        let log: URL

        var url: String { "http://127.0.0.1:\(port)/hooks" }

        /// The envelopes logged (each event once: the receiver deduplicates by webhook-id).
        func events() throws -> [[String: Any]] {
            guard let text = try? String(contentsOf: log, encoding: .utf8) else { return [] }
            return try text.split(separator: "\n").map { line in
                guard let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                    throw TestFailure("a log line is not a JSON object: \(line.prefix(200))")
                }
                return object
            }
        }
    }

    static func withReceiver<Result>(
        _ arguments: [String] = [], log: URL? = nil, _ body: (Receiver) async throws -> Result
    ) async throws -> Result {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fluxgate-receiver-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let log = log ?? directory.appendingPathComponent("events.jsonl")
        return try await withChildProcess(
            TestPython.executable, [script.path, "--port", "0", "--secret", secret, "--log", log.path] + arguments
        ) { child in
            let line = try await child.waitForLine(containing: "listening on", timeout: .seconds(60))
            guard let port = Int(line.split(separator: " ").last ?? "") else { throw TestFailure("no port in \(line)") }
            return try await body(Receiver(child: child, port: port, log: log))
        }
    }

    static func appendRound(_ store: any EventStore, aggregates: Range<Int>, events: Int, name: String = "A") async throws {
        for aggregate in aggregates {
            let batch = (0..<events).map { index in NewEvent(eventType: "t.E", payload: EventPayload(trustedJSON: Array("{\"i\":\(index)}".utf8))) }
            try await store.append(AppendRequest(aggregateID: "\(name.lowercased())-\(aggregate)", aggregateName: name, expectedVersion: .any, events: batch))
        }
    }

    static func sink(_ gateway: TestGateway, _ name: String) async throws -> [String: Any] {
        try await gateway.get("/sinks/\(name)").jsonObject()
    }

    /// Waits until the sink's checkpoint reaches `target`.
    static func waitForCheckpoint(_ gateway: TestGateway, _ name: String, _ target: Int, within limit: Duration = .seconds(120)) async throws {
        let deadline = ContinuousClock.now + limit
        var last: [String: Any] = [:]
        while ContinuousClock.now < deadline {
            last = try await sink(gateway, name)
            if (last["checkpoint"] as? Int ?? -1) >= target { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("sink \(name) did not reach \(target) within \(limit): \(last)")
    }

    /// Problems with the order per aggregate in a receiver's log: each aggregate's versions must rise.
    static func orderProblems(_ events: [[String: Any]]) -> [String] {
        var last: [String: Int] = [:]
        var problems: [String] = []
        for event in events {
            let aggregate = event["aggregate_id"] as? String ?? "?"
            let version = event["aggregate_version"] as? Int ?? -1
            if let previous = last[aggregate], previous >= version { problems.append("\(aggregate): \(version) after \(previous)") }
            last[aggregate] = version
        }
        return problems
    }

    static func positions(_ events: [[String: Any]]) -> [Int] { events.compactMap { $0["position"] as? Int } }

    // MARK: Delivery

    @Test func aFlakyReceiverGetsEveryMatchingEventOnceInOrderPerAggregateSigned() async throws {
        try await withTestGateway { gateway in
            try await Self.withReceiver(["--fail-rate", "0.3", "--slow", "1.5", "--seed", "17"]) { receiver in
                let body = """
                    {"url": "\(receiver.url)", "secret": "\(Self.secret)", "filter": {"aggregate_names": ["A"]}, "concurrency": 8,
                     "timeout_ms": 700, "maximum_attempts": 1000, "backoff_ms": 10, "maximum_backoff_ms": 200}
                    """
                let created = try await gateway.request(.PUT, "/sinks/flaky", json: body)
                #expect(created.status == .created, "\(created.text)")
                try await Self.appendRound(gateway.store, aggregates: 0..<20, events: 10)
                try await Self.appendRound(gateway.store, aggregates: 0..<5, events: 2, name: "B")  // not matched
                try await Self.appendRound(gateway.store, aggregates: 0..<20, events: 5)
                let head = Int(try await gateway.store.head().rawValue)
                try await Self.waitForCheckpoint(gateway, "flaky", head, within: .seconds(180))
                let expected = try await gateway.store.read(after: .start, limit: 1000, filter: .all).filter { $0.aggregateName == "A" }
                let logged = try receiver.events()
                #expect(Self.positions(logged).sorted() == expected.map { Int($0.position.rawValue) }, "\(logged.count) of \(expected.count)")
                #expect(Self.orderProblems(logged).isEmpty, "\(Self.orderProblems(logged))")
                #expect(logged.allSatisfy { $0["payload"] != nil && $0["event_id"] != nil }, "the envelope with its payload")
                #expect(!receiver.child.errorOutput.contains("bad signature"), "\(receiver.child.errorOutput)")
                let sink = try await Self.sink(gateway, "flaky")
                #expect(sink["parked"] as? Int == 0 && sink["lag"] as? Int == 0, "\(sink)")
                #expect((sink["redeliveries"] as? Int ?? 0) > 0, "the receiver failed some: \(sink)")
                // Metrics: attempts by outcome, their latency, and the sink's group's lag and parked events.
                let metrics = try await gateway.get("/metrics").text
                let lines = metrics.split(separator: "\n").filter { $0.contains(#"sink="flaky""#) || $0.contains(#"group="sink.flaky""#) }
                func value(_ prefix: String, _ label: String) -> Double? {
                    lines.first { $0.hasPrefix(prefix) && $0.contains(label) }.flatMap { Double($0.split(separator: " ").last ?? "") }
                }
                #expect(value("fluxgate_sink_deliveries_total", #"outcome="delivered""#) == Double(expected.count), "\(lines.joined(separator: "\n"))")
                #expect((value("fluxgate_sink_deliveries_total", #"outcome="http_status""#) ?? 0) > 0, "\(lines.joined(separator: "\n"))")
                #expect((value("fluxgate_sink_deliveries_total", #"outcome="timeout""#) ?? 0) > 0, "\(lines.joined(separator: "\n"))")
                #expect(lines.contains { $0.hasPrefix("fluxgate_sink_delivery_duration_seconds_bucket") }, "\(lines.joined(separator: "\n"))")
                #expect(value("fluxgate_group_lag_events", #"group="sink.flaky""#) == 0 && value("fluxgate_group_parked_events", #"group="sink.flaky""#) == 0)
            }
        }
    }

    @Test func aReceiverThatAlwaysFailsGetsItsEventsParkedThenReplayedOnceFixed() async throws {
        let statusFile = FileManager.default.temporaryDirectory.appendingPathComponent("fluxgate-status-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: statusFile) }
        try "500".write(to: statusFile, atomically: true, encoding: .utf8)
        try await withTestGateway { gateway in
            try await Self.withReceiver(["--status-file", statusFile.path]) { receiver in
                try await Self.appendRound(gateway.store, aggregates: 0..<2, events: 3)  // a-0: 1…3, a-1: 4…6
                let body = #"{"url": "\#(receiver.url)", "secret": "\#(Self.secret)", "maximum_attempts": 3, "backoff_ms": 10, "timeout_ms": 2000}"#
                #expect(try await gateway.request(.PUT, "/sinks/down", json: body).status == .created)
                var parked: [[String: Any]] = []
                let deadline = ContinuousClock.now + .seconds(60)
                while parked.count < 2, ContinuousClock.now < deadline {
                    parked = try await gateway.get("/sinks/down/parked").jsonObject()["parked"] as? [[String: Any]] ?? []
                    try await Task.sleep(for: .milliseconds(50))
                }
                // Each aggregate's first event is parked; its later events wait behind it (order per aggregate).
                #expect(parked.compactMap { $0["position"] as? Int } == [1, 4], "\(parked)")
                #expect(parked.allSatisfy { $0["attempts"] as? Int == 3 && ($0["reason"] as? String)?.hasPrefix("HTTP 500") == true }, "\(parked)")
                #expect(try receiver.events().isEmpty)
                let listed = try await Self.sink(gateway, "down")
                #expect(listed["parked"] as? Int == 2, "\(listed)")
                // Fixed: every parked event replayed, and everything arrives in order.
                try FileManager.default.removeItem(at: statusFile)
                #expect(try await gateway.request(.POST, "/sinks/down/replay").status == .ok)
                try await Self.waitForCheckpoint(gateway, "down", 6, within: .seconds(60))
                let waitDeadline = ContinuousClock.now + .seconds(60)
                while try receiver.events().count < 6, ContinuousClock.now < waitDeadline { try await Task.sleep(for: .milliseconds(50)) }
                let logged = try receiver.events()
                #expect(Self.positions(logged).sorted() == Array(1...6), "\(Self.positions(logged))")
                #expect(Self.orderProblems(logged).isEmpty, "\(Self.orderProblems(logged))")
                let after = try await gateway.get("/sinks/down/parked").jsonObject()["parked"] as? [Any]
                #expect(after?.isEmpty == true)
            }
        }
    }

    @Test func aGoneReceiverDisablesTheSinkUntilItIsPutAgain() async throws {
        let statusFile = FileManager.default.temporaryDirectory.appendingPathComponent("fluxgate-status-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: statusFile) }
        try "410".write(to: statusFile, atomically: true, encoding: .utf8)
        try await withTestGateway { gateway in
            try await Self.withReceiver(["--status-file", statusFile.path]) { receiver in
                try await Self.appendRound(gateway.store, aggregates: 0..<3, events: 2)
                let body = #"{"url": "\#(receiver.url)", "secret": "\#(Self.secret)", "backoff_ms": 10}"#
                #expect(try await gateway.request(.PUT, "/sinks/gone", json: body).status == .created)
                try await SubscriptionHubTests.waitUntil { (try await Self.sink(gateway, "gone"))["enabled"] as? Bool == false }
                let disabled = try await Self.sink(gateway, "gone")
                #expect((disabled["disabled_reason"] as? String)?.contains("410") == true, "\(disabled)")
                #expect(disabled["delivering"] as? Bool == false && disabled["checkpoint"] as? Int == 0, "\(disabled)")
                #expect(try receiver.events().isEmpty)
                // Nothing more is tried while it is disabled.
                try await Task.sleep(for: .milliseconds(300))
                #expect(try await Self.sink(gateway, "gone")["parked"] as? Int == 0)
                // The receiver is back: PUT enables the sink, and everything arrives.
                try FileManager.default.removeItem(at: statusFile)
                #expect(try await gateway.request(.PUT, "/sinks/gone", json: body).status == .ok)
                let enabled = try await Self.sink(gateway, "gone")
                #expect(enabled["enabled"] as? Bool == true && enabled["delivering"] as? Bool == true, "\(enabled)")
                try await Self.waitForCheckpoint(gateway, "gone", 6, within: .seconds(60))
                #expect(Self.positions(try receiver.events()).sorted() == Array(1...6))
            }
        }
    }

    @Test func aReceiverThatAnswersAtLengthIsAcknowledgedByItsStatus() async throws {
        // 4 MiB answers: the gateway reads 64 KiB of each, acknowledges by the status, and neither fails the delivery
        // nor holds the rest in memory.
        try await withTestGateway { gateway in
            try await Self.withReceiver(["--answer-bytes", "\(4 << 20)"]) { receiver in
                try await Self.appendRound(gateway.store, aggregates: 0..<6, events: 5)
                let body = #"{"url": "\#(receiver.url)", "secret": "\#(Self.secret)", "concurrency": 4, "maximum_attempts": 2, "backoff_ms": 10, "timeout_ms": 10000}"#
                #expect(try await gateway.request(.PUT, "/sinks/talkative", json: body).status == .created)
                try await Self.waitForCheckpoint(gateway, "talkative", 30, within: .seconds(120))
                #expect(Self.positions(try receiver.events()).sorted() == Array(1...30))
                let sink = try await Self.sink(gateway, "talkative")
                #expect(sink["parked"] as? Int == 0 && sink["redeliveries"] as? Int == 0, "\(sink)")
                let metrics = try await gateway.get("/metrics").text
                let attempts = metrics.split(separator: "\n").filter { $0.hasPrefix("fluxgate_sink_deliveries_total{") && $0.contains(#"sink="talkative""#) }
                #expect(attempts.count == 1 && attempts.first?.contains(#"outcome="delivered""#) == true && attempts.first?.hasSuffix(" 30") == true,
                    "every attempt delivered: \(attempts)")
            }
        }
    }

    /// Parks the first event (of one) after 2 attempts at `url` and returns the parked reason.
    static func parkedReason(_ gateway: TestGateway, url: String, timeoutMilliseconds: Int = 2000) async throws -> String? {
        let name = "reason-\(UInt32.random(in: 0...UInt32.max))"
        let body = #"{"url": "\#(url)", "secret": "\#(Self.secret)", "maximum_attempts": 2, "backoff_ms": 10, "timeout_ms": \#(timeoutMilliseconds)}"#
        let created = try await gateway.request(.PUT, "/sinks/\(name)", json: body)
        guard created.status == .created else { throw TestFailure("PUT: \(created.status) \(created.text)") }
        var parked: [[String: Any]] = []
        let deadline = ContinuousClock.now + .seconds(60)
        while parked.isEmpty, ContinuousClock.now < deadline {
            parked = try await gateway.get("/sinks/\(name)/parked").jsonObject()["parked"] as? [[String: Any]] ?? []
            try await Task.sleep(for: .milliseconds(20))
        }
        _ = try await gateway.request(.DELETE, "/sinks/\(name)")
        return parked.first?["reason"] as? String
    }

    @Test func failuresAreParkedWithAReasonThatNamesTheCause() async throws {
        try await withTestGateway { gateway in
            try await Self.appendRound(gateway.store, aggregates: 0..<1, events: 1)
            let closed = try ClosedPort()
            let refused = try await Self.parkedReason(gateway, url: "http://127.0.0.1:\(closed.port)/hooks")
            #expect(refused == "connection refused", "\(refused ?? "nothing parked")")
            try await Self.withReceiver(["--fail-rate", "1", "--fail-modes", "slow", "--slow", "2"]) { receiver in
                let slow = try await Self.parkedReason(gateway, url: receiver.url, timeoutMilliseconds: 300)
                #expect(slow == "timed out after 300 ms", "\(slow ?? "nothing parked")")
            }
            try await Self.withReceiver(["--fail-rate", "1", "--fail-modes", "drop"]) { receiver in
                let dropped = try await Self.parkedReason(gateway, url: receiver.url)
                #expect(dropped?.contains("closed") == true, "\(dropped ?? "nothing parked")")
                print("parked reason of a dropped connection: \(dropped ?? "-")")
            }
            try await Self.withReceiver(["--status", "503"]) { receiver in
                let status = try await Self.parkedReason(gateway, url: receiver.url)
                #expect(status == "HTTP 503 Service Unavailable", "\(status ?? "nothing parked")")
            }
            // HTTPS with a certificate no trusted CA signed: TLS verification refuses it.
            let certificates = try await TestCertificates.shared()
            try await Self.withReceiver(["--tls-cert", certificates.certificateFile, "--tls-key", certificates.keyFile]) { receiver in
                let untrusted = try await Self.parkedReason(gateway, url: "https://localhost:\(receiver.port)/hooks")
                #expect(untrusted?.hasPrefix("TLS failure") == true, "\(untrusted ?? "nothing parked")")
                print("parked reasons: \(refused ?? "-") | \(untrusted ?? "-")")
                #expect(try receiver.events().isEmpty)
                // The sink's own CA: its receiver's certificate verifies, and the events arrive.
                let ca = try String(contentsOfFile: certificates.caFile, encoding: .utf8)
                var document: [String: Any] = ["url": "https://localhost:\(receiver.port)/hooks", "secret": Self.secret, "backoff_ms": 10, "ca_certificates": ca]
                let body = String(decoding: try JSONSerialization.data(withJSONObject: document), as: UTF8.self)
                let created = try await gateway.request(.PUT, "/sinks/private-ca", json: body)
                #expect(created.status == .created, "\(created.text)")
                #expect(try created.jsonObject()["ca_certificates"] as? String == ca)
                let head = Int(try await gateway.store.head().rawValue)
                try await Self.waitForCheckpoint(gateway, "private-ca", head, within: .seconds(60))
                #expect(!(try receiver.events().isEmpty))
                // Anything but PEM certificates is refused.
                document["ca_certificates"] = "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"
                let refusedCA = try await gateway.request(.PUT, "/sinks/bad-ca", json: String(decoding: try JSONSerialization.data(withJSONObject: document), as: UTF8.self))
                #expect(refusedCA.status == .badRequest && refusedCA.text.contains("ca_certificates must be PEM CA certificates"), "\(refusedCA.text)")
            }
        }
    }

    /// A rotation: the sink signs with the new secret and the previous one at once, so a receiver that knows either
    /// verifies every delivery; a changed URL is used from the next delivery on.
    @Test func aRotatedSecretSignsWithBothAndAChangedURLIsUsedAtOnce() async throws {
        let newSecret = "whsec_" + Data((0..<32).map { UInt8($0) }).base64EncodedString()
        try await withTestGateway { gateway in
            try await Self.withReceiver { before in
                let body = #"{"url": "\#(before.url)", "secret": "\#(Self.secret)", "backoff_ms": 10}"#
                #expect(try await gateway.request(.PUT, "/sinks/rotating", json: body).status == .created)
                try await Self.appendRound(gateway.store, aggregates: 0..<2, events: 2)
                try await Self.waitForCheckpoint(gateway, "rotating", 4, within: .seconds(60))
                #expect(Self.positions(try before.events()).sorted() == [1, 2, 3, 4])
            }
            // Two receivers after the rotation: one knows only the new secret, one only the old; both verify.
            for known in [newSecret, Self.secret] {
                try await Self.withReceiver(["--secret", known]) { receiver in  // (the last --secret counts)
                    let body = #"{"url": "\#(receiver.url)", "secret": "\#(newSecret)", "previous_secret": "\#(Self.secret)", "backoff_ms": 10}"#
                    #expect(try await gateway.request(.PUT, "/sinks/rotating", json: body).status == .ok)
                    let head = Int(try await gateway.store.head().rawValue)
                    try await Self.appendRound(gateway.store, aggregates: 0..<2, events: 1)
                    try await Self.waitForCheckpoint(gateway, "rotating", head + 2, within: .seconds(60))
                    #expect(Self.positions(try receiver.events()).sorted() == [head + 1, head + 2], "the new URL gets what comes after")
                    #expect(!receiver.child.errorOutput.contains("bad signature"), "\(receiver.child.errorOutput)")
                }
            }
        }
    }

    // MARK: The API

    @Test func badDefinitionsAreRefusedWithAReason() async throws {
        try await withTestGateway { gateway in
            let cases: [(String, String)] = [
                (#"{"secret": "\#(Self.secret)"}"#, "url is required"),
                (#"{"url": "not a url", "secret": "\#(Self.secret)"}"#, "url"),
                (#"{"url": "ftp://example.com/x", "secret": "\#(Self.secret)"}"#, "scheme must be http or https"),
                (#"{"url": "http:///nohost", "secret": "\#(Self.secret)"}"#, "host"),
                (#"{"url": "https://user:pw@example.com/", "secret": "\#(Self.secret)"}"#, "credentials"),
                (#"{"url": "https://example.com/", "secret": ""}"#, "secret is empty"),
                (#"{"url": "https://example.com/", "secret": "hunter2"}"#, "whsec_"),
                (#"{"url": "https://example.com/", "secret": "\#(Self.secret)", "previous_secret": "x"}"#, "previous_secret"),
                (#"{"url": "https://example.com/", "concurrency": 0}"#, "concurrency"),
                (#"{"url": "https://example.com/", "concurrency": 65}"#, "concurrency"),
                (#"{"url": "https://example.com/", "timeout_ms": 50}"#, "timeout_ms"),
                (#"{"url": "https://example.com/", "maximum_attempts": 0}"#, "maximum_attempts"),
                (#"{"url": "https://example.com/", "backoff_ms": 5000, "maximum_backoff_ms": 1000}"#, "backoff"),
                (#"{"url": "https://example.com/", "filter": {"aggregate_names": "A"}}"#, "filter"),
                (#"{"url": "https://example.com/", "start": "later"}"#, "start"),
                ("[]", "JSON object"),
                ("{", "not valid JSON"),
            ]
            for (body, words) in cases {
                let response = try await gateway.request(.PUT, "/sinks/bad", json: body)
                #expect(response.status == .badRequest, "\(body): \(response.status) \(response.text)")
                let object = try response.jsonObject()
                #expect(object["error"] as? String == "bad_request", "\(body): \(object)")
                #expect((object["message"] as? String)?.contains(words) == true, "\(body): \(object)")
            }
            #expect(try await gateway.request(.PUT, "/sinks/bad%20name", json: #"{"url": "https://example.com/"}"#).status == .badRequest)
            #expect(try await gateway.get("/sinks/bad").status == .notFound)
            #expect((try await gateway.get("/sinks").jsonObject()["sinks"] as? [Any])?.isEmpty == true)
        }
    }

    @Test func secretsAreNeverShownButAMadeOneIsShownOnce() async throws {
        try await withTestGateway { gateway in
            // No secret: one is made and shown in the answer to this PUT only.
            let created = try await gateway.request(.PUT, "/sinks/made", json: #"{"url": "https://127.0.0.1:9/never", "start": "head"}"#)
            #expect(created.status == .created, "\(created.text)")
            let made = try #require(try created.jsonObject()["secret"] as? String)
            #expect(made.hasPrefix("whsec_"))
            let shown = try await gateway.get("/sinks/made")
            #expect(!shown.text.contains(made) && shown.text.contains("secret_fingerprints"), "\(shown.text)")
            // A rotation: the new secret and the previous one sign at once; neither is shown.
            let rotated = try await gateway.request(
                .PUT, "/sinks/made", json: #"{"url": "https://127.0.0.1:9/never", "secret": "\#(Self.secret)", "previous_secret": "\#(made)"}"#)
            #expect(rotated.status == .ok, "\(rotated.text)")
            #expect(!rotated.text.contains(made) && !rotated.text.contains(Self.secret))
            #expect((try rotated.jsonObject()["secret_fingerprints"] as? [String])?.count == 2)
            let listed = try await gateway.get("/sinks")
            #expect(!listed.text.contains(made) && !listed.text.contains(Self.secret))
            // Sinks' groups are not user groups.
            #expect(!(try await gateway.get("/groups").text.contains("sink.made")))
            #expect(try await gateway.request(.PUT, "/groups/sink.x", json: "{}").status == .badRequest)
            #expect(try await gateway.get("/groups/sink.made").status == .notFound)
            #expect(try await gateway.request(.DELETE, "/sinks/made").status == .noContent)
            #expect(try await gateway.get("/sinks/made").status == .notFound)
        }
    }

    static func bearer(_ token: String) -> [(String, String)] { [("Authorization", "Bearer \(token)")] }

    @Test func readingTakesTheGroupsScopeAndChangingGroupsAdmin() async throws {
        let access = try await AccessControl(tokens: [
            .init(name: "admin", token: "a", scopes: ["groups:admin"]),
            .init(name: "member", token: "m", scopes: ["read", "groups"]),
            .init(name: "reader", token: "r", scopes: ["read"]),
        ])
        try await withTestGateway(await TestGateway.start(accessControl: access)) { gateway in
            let body = #"{"url": "https://127.0.0.1:9/", "secret": "\#(Self.secret)", "start": "head"}"#
            let anonymous = try await gateway.request(.PUT, "/sinks/s", json: body)
            #expect(anonymous.status == .unauthorized)
            #expect(try await gateway.request(.PUT, "/sinks/s", json: body, headers: Self.bearer("m")).status == .forbidden)
            #expect(try await gateway.request(.PUT, "/sinks/s", json: body, headers: Self.bearer("a")).status == .created)
            #expect(try await gateway.get("/sinks/s", headers: Self.bearer("m")).status == .ok)
            #expect(try await gateway.get("/sinks", headers: Self.bearer("r")).status == .forbidden)
            #expect(try await gateway.request(.POST, "/sinks/s/replay", headers: Self.bearer("m")).status == .forbidden)
            #expect(try await gateway.request(.DELETE, "/sinks/s", headers: Self.bearer("m")).status == .forbidden)
            #expect(try await gateway.request(.DELETE, "/sinks/s", headers: Self.bearer("a")).status == .noContent)
        }
    }

    // MARK: Durability

    /// One request to a gateway at `port` on a new connection.
    static func request(_ port: Int, _ method: HTTPMethod, _ target: String, json: String? = nil) async throws -> HTTPResponse {
        let connection = try await HTTPConnection.connect(host: "127.0.0.1", port: port)
        connection.responseTimeout = .seconds(60)
        let headers = json == nil ? [] : [("Content-Type", "application/json")]
        let response = try await connection.request(method, target, headers: headers, body: json.map { ByteBuffer(string: $0) })
        await connection.close()
        return response
    }

    static func listeningPort(_ server: ChildProcess) async throws -> Int {
        let line = try await server.waitForLine(containing: "listening", timeout: .seconds(60))
        return try #require(line.firstMatch(of: /127\.0\.0\.1:(\d+)/).flatMap { Int($0.1) })
    }

    /// `fluxgate serve` on SQLite killed with SIGKILL mid-run, and started again on the same file: the sink goes on
    /// from its stored checkpoint and every event arrives (repeats are dropped by the receiver), in order per aggregate.
    /// The issue's acceptance run: a receiver that fails 30% of deliveries at random (500s, answers past the timeout,
    /// connections dropped), `fluxgate serve` SIGKILLed once mid-run, and the receiver restarted once while the next
    /// gateway delivers: every event arrives, each aggregate's in version order after deduplication, every signature
    /// verified by the `standardwebhooks` package.
    @Test func nothingIsLostWhenFluxgateServeIsKilledAndTheReceiverRestarted() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fluxgate-sink-kill-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = "sqlite:" + directory.appendingPathComponent("events.sqlite").path
        let log = directory.appendingPathComponent("received.jsonl")
        let (aggregates, perAggregate) = (30, 10)
        let total = aggregates * perAggregate
        let chaos = ["--secret", Self.secret, "--log", log.path, "--fail-rate", "0.3", "--slow", "1"]
        try await withChildProcess(TestPython.executable, [Self.script.path, "--port", "0", "--seed", "9"] + chaos) { first in
            let line = try await first.waitForLine(containing: "listening on", timeout: .seconds(60))
            let receiverPort = try #require(Int(line.split(separator: " ").last ?? ""))
            let logged = { try Receiver(child: first, port: receiverPort, log: log).events() }
            try await withFluxgate(["serve", "--port", "0", "--store", store]) { server in
                let port = try await Self.listeningPort(server)
                let body = #"{"url": "http://127.0.0.1:\#(receiverPort)/hooks", "secret": "\#(Self.secret)", "concurrency": 4, "timeout_ms": 500, "backoff_ms": 10, "maximum_backoff_ms": 100, "maximum_attempts": 1000}"#
                let created = try await Self.request(port, .PUT, "/sinks/killed", json: body)
                #expect(created.status == .created, "\(created.text)")
                for aggregate in 0..<aggregates {
                    let events = (0..<perAggregate).map { #"{"event_type": "t.E", "payload": {"i": \#($0)}}"# }.joined(separator: ",")
                    let appended = try await Self.request(
                        port, .POST, "/streams/a-\(aggregate)", json: #"{"aggregate_name": "A", "expected_version": "any", "events": [\#(events)]}"#)
                    #expect(appended.status == .created, "\(appended.text)")
                }
                try await SubscriptionHubTests.waitUntil { try logged().count >= 40 }
                server.signal(SIGKILL)
                _ = await server.waitForExit(timeout: .seconds(20))
            }
            #expect(try logged().count < total, "the kill came mid-run")
            try await withFluxgate(["serve", "--port", "0", "--store", store]) { server in
                let port = try await Self.listeningPort(server)
                // The receiver goes away mid-run and comes back on the same port (it reads the ids it logged).
                try await SubscriptionHubTests.waitUntil { try logged().count >= total / 2 }
                #expect(try logged().count < total, "the receiver's restart came mid-run")
                first.signal(SIGTERM)
                _ = await first.waitForExit(timeout: .seconds(20))
                #expect(!first.errorOutput.contains("bad signature"), "\(first.errorOutput)")
                try await withChildProcess(TestPython.executable, [Self.script.path, "--port", "\(receiverPort)", "--seed", "10"] + chaos) { second in
                    _ = try await second.waitForLine(containing: "listening on", timeout: .seconds(60))
                    let deadline = ContinuousClock.now + .seconds(180)
                    var sink: [String: Any] = [:]
                    while ContinuousClock.now < deadline {
                        sink = try await Self.request(port, .GET, "/sinks/killed").jsonObject()
                        if sink["checkpoint"] as? Int == total { break }
                        try await Task.sleep(for: .milliseconds(50))
                    }
                    #expect(sink["checkpoint"] as? Int == total && sink["parked"] as? Int == 0, "\(sink)")
                    #expect(!second.errorOutput.contains("bad signature"), "\(second.errorOutput)")
                }
            }
            let events = try logged()
            #expect(Self.positions(events).sorted() == Array(1...total), "\(events.count) of \(total)")
            #expect(Self.orderProblems(events).isEmpty, "\(Self.orderProblems(events))")
        }
    }

    @Test func theReceiverExampleDropsARequestCutShortInsteadOfCallingItBadlySigned() async throws {
        // A sender that gives up mid-body (its timeout) leaves a request shorter than its content-length: the example
        // receiver must not verify what it has (that is not a bad signature) nor answer it; the next request is served.
        try await Self.withReceiver { receiver in
            let cut = try await RawTCPConnection.connect(port: receiver.port)
            try await cut.send("POST /hooks HTTP/1.1\r\nHost: x\r\nwebhook-id: cut\r\nwebhook-timestamp: 1\r\nwebhook-signature: v1,x\r\ncontent-length: 100\r\n\r\n{\"event\":")
            await cut.shutdownOutput()
            #expect(try await cut.readUntil("\r\n") == nil, "no answer to a request cut short")
            await cut.close()
            let lying = try await RawTCPConnection.connect(port: receiver.port)
            try await lying.send("POST /hooks HTTP/1.1\r\nHost: x\r\ncontent-length: -5\r\n\r\n")
            #expect(try await lying.readUntil("\r\n")?.hasPrefix("HTTP/1.1 400") == true)
            await lying.close()
            let unsigned = try await RawTCPConnection.connect(port: receiver.port)
            try await unsigned.send("POST /hooks HTTP/1.1\r\nHost: x\r\ncontent-length: 2\r\n\r\n{}")
            #expect(try await unsigned.readUntil("\r\n")?.hasPrefix("HTTP/1.1 401") == true, "a whole unsigned request is answered 401")
            await unsigned.close()
            receiver.child.signal(SIGINT)  // (it prints its counts as it stops)
            _ = await receiver.child.waitForExit(timeout: .seconds(20))
            #expect(receiver.child.errorOutput.contains(#""bad_signature": 1"#) && receiver.child.errorOutput.contains(#""cut_short": 1"#), "\(receiver.child.errorOutput)")
        }
    }

    @Test func aGracefulStopStoresEveryAcknowledgementTheSinkHad() async throws {
        // Acknowledgements are stored in the background (at most every 100 ms); a stopping gateway writes what is left,
        // so that a graceful restart delivers nothing again.
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fluxgate-sink-flush-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("events.sqlite").path
        try await Self.withReceiver { receiver in
            let store = try SQLiteEventStore(path: path)
            try await withTestGateway(await TestGateway.start(store: store)) { gateway in
                let body = #"{"url": "\#(receiver.url)", "secret": "\#(Self.secret)", "concurrency": 8}"#
                #expect(try await gateway.request(.PUT, "/sinks/flushed", json: body).status == .created)
                try await Self.appendRound(gateway.store, aggregates: 0..<60, events: 1)
                // Every delivery answered and settled in the ledger (GET shows the ledger's checkpoint while it runs).
                try await Self.waitForCheckpoint(gateway, "flushed", 60)
            }
            #expect(try await store.consumerGroup(named: "sink.flushed")?.checkpoint == Position(60))
            try await store.close()
            #expect(Self.positions(try receiver.events()).sorted() == Array(1...60))
        }
    }

    @Test func nothingIsLostAcrossAGatewayRestartOnSQLite() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fluxgate-sink-restart-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("events.sqlite").path
        let log = directory.appendingPathComponent("received.jsonl")
        let total = 30 * 10
        try await Self.withReceiver(["--fail-rate", "0.2", "--slow", "1", "--seed", "5"], log: log) { receiver in
            let store = try SQLiteEventStore(path: path)
            try await withTestGateway(await TestGateway.start(store: store)) { gateway in
                let body = #"{"url": "\#(receiver.url)", "secret": "\#(Self.secret)", "concurrency": 4, "timeout_ms": 500, "backoff_ms": 10, "maximum_backoff_ms": 100, "maximum_attempts": 1000}"#
                #expect(try await gateway.request(.PUT, "/sinks/durable", json: body).status == .created)
                try await Self.appendRound(gateway.store, aggregates: 0..<30, events: 10)
                // Stopped mid-run: once some have arrived, not all.
                try await SubscriptionHubTests.waitUntil { try receiver.events().count >= 40 }
            }
            try await store.close()
            #expect(try receiver.events().count < total, "the restart came mid-run")
            let reopened = try SQLiteEventStore(path: path)
            try await withTestGateway(await TestGateway.start(store: reopened)) { gateway in
                try await Self.waitForCheckpoint(gateway, "durable", total, within: .seconds(180))
                let sink = try await Self.sink(gateway, "durable")
                #expect(sink["lag"] as? Int == 0 && sink["parked"] as? Int == 0, "\(sink)")
            }
            try await reopened.close()
            let logged = try receiver.events()
            #expect(Self.positions(logged).sorted() == Array(1...total), "\(logged.count) of \(total)")
            #expect(Self.orderProblems(logged).isEmpty, "\(Self.orderProblems(logged))")
        }
    }
}
