import FluxConsumer
import FluxCore
import FluxTesting
import Foundation
import NIOCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Replays, byte for byte in what it sends and strictly in what it decodes, the request pattern of an
/// unmodified consumer of the original Go flux framework (consumer/json_consumer.go) against a real
/// `fluxgate serve` process on the embedded SQLite store:
/// every interval `GET <base>/events?offset=N`, decode `{"description", "events": [EventEntry]}` with Go's
/// types (a wrongly typed field or a non-JSON answer kills it), fetch each entry's absolute `url` and decode
/// the bare payload into the event type named by `event_type`, then advance N by the number of entries.
@Suite struct FluxGoConsumerCompatibilityTests {
    /// The original's `feed.JsonEventFeed` and `feed.EventEntry`, with Go's field types.
    struct JsonEventFeed: Decodable {
        var description: String
        var events: [EventEntry]?  // Go decodes `null` into a nil slice too; we check it is never null below
    }

    struct EventEntry: Decodable {
        var event_id: String
        var url: String
        var aggregate_name: String
        var aggregate_version: Int
        var event_type: String
        var created: String
    }

    /// The bank example's events, as the Go read model declares them.
    struct AccountCreated: Decodable, Equatable { var account_id: String; var balance: Int }
    struct AccountCredited: Decodable, Equatable { var account_id: String; var transaction_id: String; var amount: Int }

    /// `http.Get(url)` then `json.Unmarshal` (strict types), over a fresh connection like Go's default client may use.
    func fetch<T: Decodable>(_ url: String, as type: T.Type) async throws -> (T, String) {
        let parsed = try #require(URL(string: url))
        let connection = try await HTTPConnection.connect(host: try #require(parsed.host), port: try #require(parsed.port))
        var target = parsed.path
        if let query = parsed.query { target += "?" + query }
        let response = try await connection.request(.GET, target, headers: [("User-Agent", "Go-http-client/1.1"), ("Accept-Encoding", "gzip")])
        await connection.close()
        #expect(response.status == .ok, "\(url) answered \(response.status)")
        return (try JSONDecoder().decode(T.self, from: Data(response.body.readableBytesView)), response.text)
    }

    @Test func unmodifiedGoConsumerWorksAgainstFluxgateServe() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fluxgate-go-compat-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        try await withFluxgate(
            ["serve", "--port", "0", "--store", "sqlite:\(directory.path)/events.sqlite"]
        ) { server in
            let line = try await server.waitForLine(containing: "listening")
            let address = try #require(line.firstMatch(of: /http:\/\/127\.0\.0\.1:(\d+)/))
            let port = try #require(Int(address.1))
            let base = "http://127.0.0.1:\(port)"

            // The command side writes through the append API.
            let writer = try await HTTPConnection.connect(host: "127.0.0.1", port: port)
            func append(_ id: String, _ expected: Int, _ events: [(String, String)]) async throws {
                let list = events.map { #"{"event_type": "\#($0.0)", "payload": \#($0.1)}"# }.joined(separator: ",")
                let response = try await writer.request(
                    .POST, "/streams/\(id)", headers: [("Content-Type", "application/json")],
                    body: ByteBuffer(string: #"{"aggregate_name": "Account", "expected_version": \#(expected), "events": [\#(list)]}"#))
                #expect(response.status == .created, "\(response.text)")
            }
            try await append("acc-1", -1, [("account.AccountCreated", #"{"account_id": "acc-1", "balance": 0}"#)])
            try await append("acc-1", 0, [("account.AccountCredited", #"{"account_id": "acc-1", "transaction_id": "t1", "amount": 50}"#)])
            try await append("acc-2", -1, [("account.AccountCreated", #"{"account_id": "acc-2", "balance": 10}"#)])

            // The Go consumer's loop, a few intervals long, with more appends between polls.
            var offset = 0
            var received: [(EventEntry, Any)] = []
            for interval in 0..<4 {
                let (feed, text) = try await fetch("\(base)/events?offset=\(offset)", as: JsonEventFeed.self)
                #expect(feed.description == "event feed")
                #expect(!text.contains(#""events":null"#), "the events list is never null")
                let entries = try #require(feed.events)
                for entry in entries {
                    #expect(entry.url.hasPrefix("\(base)/events/"), "absolute url: \(entry.url)")
                    #expect(entry.created.count == 24, "asctime-style created: \(entry.created)")
                    switch entry.event_type {
                    case "account.AccountCreated":
                        received.append((entry, try await fetch(entry.url, as: AccountCreated.self).0))
                    case "account.AccountCredited":
                        received.append((entry, try await fetch(entry.url, as: AccountCredited.self).0))
                    default:
                        Issue.record("unexpected event type \(entry.event_type)")
                    }
                }
                offset += entries.count
                if interval == 1 {
                    try await append("acc-2", 0, [("account.AccountCredited", #"{"account_id": "acc-2", "transaction_id": "t2", "amount": 5}"#),
                                                  ("account.AccountCredited", #"{"account_id": "acc-2", "transaction_id": "t3", "amount": 7}"#)])
                }
            }
            await writer.close()

            #expect(offset == 5)
            #expect(received.map { $0.0.aggregate_version } == [0, 1, 0, 1, 2])
            #expect(received.map { $0.0.aggregate_name } == Array(repeating: "Account", count: 5))
            #expect(received[0].1 as? AccountCreated == AccountCreated(account_id: "acc-1", balance: 0))
            #expect(received[1].1 as? AccountCredited == AccountCredited(account_id: "acc-1", transaction_id: "t1", amount: 50))
            #expect(received[4].1 as? AccountCredited == AccountCredited(account_id: "acc-2", transaction_id: "t3", amount: 7))
            #expect(Set(received.map { $0.0.event_id }).count == 5, "no event twice")

            // SIGTERM stops the server gracefully.
            server.signal(SIGTERM)
            #expect(await server.waitForExit(timeout: .seconds(20)) == 0)
        }
    }

    /// The consumer's pattern across a SIGTERM (issue 14, item 3): one keep-alive connection, a page then a GET per
    /// entry, the stop sent mid-catch-up. Until the connection ends, every answer is a whole 200 the Go consumer
    /// decodes (never a 503 it would take for an empty event and then skip the rest of its page), and the server
    /// exits 0.
    @Test func aStopMidCatchUpAnswersEveryRequestItTook() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fluxgate-go-stop-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        try await withFluxgate(["serve", "--port", "0", "--store", "sqlite:\(directory.path)/events.sqlite"]) { server in
            let line = try await server.waitForLine(containing: "listening")
            let port = try #require(line.firstMatch(of: /http:\/\/127\.0\.0\.1:(\d+)/).flatMap { Int($0.1) })
            let writer = try await HTTPConnection.connect(host: "127.0.0.1", port: port)
            for batch in 0..<8 {
                let events = (0..<50).map { index in
                    #"{"event_type": "account.AccountCredited", "payload": {"account_id": "acc-\#(batch)", "transaction_id": "t\#(batch * 50 + index)", "amount": 1}}"#
                }
                let response = try await writer.request(
                    .POST, "/streams/acc-\(batch)", headers: [("Content-Type", "application/json")],
                    body: ByteBuffer(string: #"{"aggregate_name": "Account", "expected_version": "any", "events": [\#(events.joined(separator: ","))]}"#))
                #expect(response.status == .created)
            }
            await writer.close()

            let consumer = try await HTTPConnection.connect(host: "127.0.0.1", port: port)
            var offset = 0
            var answered = 0
            var stopped = false
            catchUp: while offset < 400 {
                let page: HTTPResponse
                do {
                    page = try await consumer.request(.GET, "/events?offset=\(offset)", headers: [("User-Agent", "Go-http-client/1.1")])
                } catch {
                    break catchUp  // the connection ended: the Go consumer stops here too
                }
                #expect(page.status == .ok, "a page during the stop answered \(page.status): \(page.text)")
                guard page.status == .ok else { break }
                let feed = try JSONDecoder().decode(JsonEventFeed.self, from: Data(page.body.readableBytesView))
                for entry in try #require(feed.events) {
                    if answered == 150 && !stopped {
                        server.signal(SIGTERM)
                        stopped = true
                    }
                    let parsed = try #require(URL(string: entry.url))
                    let response: HTTPResponse
                    do {
                        response = try await consumer.request(.GET, parsed.path, headers: [("User-Agent", "Go-http-client/1.1")])
                    } catch {
                        break catchUp
                    }
                    #expect(response.status == .ok, "an entry during the stop answered \(response.status): \(response.text)")
                    guard response.status == .ok else { break catchUp }
                    let payload = try JSONDecoder().decode(AccountCredited.self, from: Data(response.body.readableBytesView))
                    #expect(payload.transaction_id == "t\(answered)", "entries in feed order")
                    answered += 1
                }
                offset += feed.events?.count ?? 0
            }
            await consumer.close()
            #expect(stopped, "the stop was sent mid-catch-up")
            #expect(answered >= 150)
            #expect(await server.waitForExit(timeout: .seconds(20)) == 0)
        }
    }

    @Test func serveRejectsBadArgumentsWithAMessage() async throws {
        try await withFluxgate(["serve", "--store", "postgres-or-whatever"]) { bad in
            let status = await bad.waitForExit(timeout: .seconds(20))
            #expect(status != nil && status != 0)
            #expect(bad.errorOutput.contains("--store"), "stderr: \(bad.errorOutput)")
        }
    }
}
