import FluxCore
import FluxGateway
import FluxSQLite
import FluxTesting
import Foundation
import Testing

/// Webhook sinks declared in the configuration (`DeclaredWebhookSink`, `--sinks`, `--sinks-file`, the config file's
/// `sinks`): checked like `PUT` before the gateway starts, put at start when missing or changed, left alone otherwise.
@Suite struct DeclaredWebhookSinkTests {
    static let secret = WebhookSinkTests.secret

    @Test func declarationsAreCheckedAsPutChecksThem() throws {
        let sinks = try DeclaredWebhookSink.declarations(
            in: #"{"billing": {"url": "https://example.com/hooks", "secret": "\#(Self.secret)", "concurrency": 4}, "audit": {"url": "http://127.0.0.1:9/", "secret": "\#(Self.secret)"}}"#,
            source: "--sinks")
        #expect(sinks.map(\.name) == ["billing", "audit"])
        #expect(sinks[0].body == #"{"url": "https://example.com/hooks", "secret": "\#(Self.secret)", "concurrency": 4}"#)
        func refusal(_ text: String) -> String {
            do {
                _ = try DeclaredWebhookSink.declarations(in: text, source: "--sinks")
                return "accepted"
            } catch {
                return error.description
            }
        }
        #expect(refusal("[1]").contains("must be a JSON object of sink name"))
        #expect(refusal("{").contains("is not valid JSON"))
        #expect(refusal(#"{"a": {"url": "https://x.example"}}"#).contains(#"needs its "secret""#))
        #expect(refusal(#"{"a": {"url": "ftp://x.example", "secret": "\#(Self.secret)"}}"#).contains(#"url's scheme must be http or https, not "ftp""#))
        #expect(refusal(#"{"a": {"url": "https://x.example", "secret": ""}}"#).contains("secret"))
        #expect(refusal(#"{"a": {"url": "https://x.example", "secret": "\#(Self.secret)", "concurrency": 65}}"#).contains("concurrency must be an integer from 1 to 64"))
        #expect(refusal(#"{"a b": {"url": "https://x.example", "secret": "\#(Self.secret)"}}"#).contains("name is 1 to 120"))
        #expect(refusal(#"{"a": [1]}"#).contains("must be a JSON object"))
        #expect(refusal(#"{"a": {"url": "https://x.example", "secret": "\#(Self.secret)"}, "a": {"url": "https://y.example", "secret": "\#(Self.secret)"}}"#).contains("twice"))
    }

    @Test func declaredSinksArePutAtStartAndLeftAloneWhileTheyAreStoredAsDeclared() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fluxgate-declared-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("events.sqlite").path
        try await WebhookSinkTests.withReceiver { receiver in
            func declared(concurrency: Int) throws -> [DeclaredWebhookSink] {
                [try DeclaredWebhookSink(name: "declared", body: #"{"url": "\#(receiver.url)", "secret": "\#(Self.secret)", "concurrency": \#(concurrency), "backoff_ms": 10}"#)]
            }
            // First start: created, and it delivers.
            let store = try SQLiteEventStore(path: path)
            try await WebhookSinkTests.appendRound(store, aggregates: 0..<4, events: 3)
            let first = try declared(concurrency: 2)
            try await withTestGateway(await TestGateway.start(store: store) { $0.webhookSinks = first }) { gateway in
                try await WebhookSinkTests.waitForCheckpoint(gateway, "declared", 12)
                #expect(try await WebhookSinkTests.sink(gateway, "declared")["concurrency"] as? Int == 2)
            }
            // Disabled meanwhile (as a 410 would): the same declaration leaves it disabled...
            try await store.disableWebhookSink(named: "declared", reason: "410 Gone")
            try await withTestGateway(await TestGateway.start(store: store) { $0.webhookSinks = first }) { gateway in
                let sink = try await WebhookSinkTests.sink(gateway, "declared")
                #expect(sink["enabled"] as? Bool == false && sink["checkpoint"] as? Int == 12, "\(sink)")
            }
            // ...a changed one puts it: enabled, changed, its checkpoint kept.
            try await withTestGateway(await TestGateway.start(store: store) { $0.webhookSinks = try! declared(concurrency: 5) }) { gateway in
                let sink = try await WebhookSinkTests.sink(gateway, "declared")
                #expect(sink["enabled"] as? Bool == true && sink["concurrency"] as? Int == 5 && sink["checkpoint"] as? Int == 12, "\(sink)")
            }
            try await store.close()
            #expect(WebhookSinkTests.positions(try receiver.events()).sorted() == Array(1...12))
        }
    }
}
