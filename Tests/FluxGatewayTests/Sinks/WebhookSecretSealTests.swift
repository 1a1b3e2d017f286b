import FluxCore
import FluxSQLite
import FluxTesting
import Foundation
import Logging
import Synchronization
import Testing

@testable import FluxGateway

/// Sinks' secrets sealed at rest (`WebhookSecretSeal`, `--sinks-key-file`): the store never holds a secret in the
/// clear, deliveries still verify, and a gateway without the key says so instead of signing with garbage.
@Suite struct WebhookSecretSealTests {
    static let key = Data((0..<32).map { UInt8($0 &* 7) }).base64EncodedString()
    static let otherKey = Data((0..<32).map { UInt8(255 - $0) }).base64EncodedString()

    @Test func sealedSecretsOpenOnlyWithTheirKey() throws {
        let seal = try WebhookSecretSeal(base64: Self.key + "\n")
        let sealed = seal.seal(WebhookSinkTests.secret)
        #expect(sealed.hasPrefix("sealed:v1:") && !sealed.contains(WebhookSinkTests.secret))
        #expect(sealed != seal.seal(WebhookSinkTests.secret), "a new nonce each time")
        #expect(try seal.open(sealed) == WebhookSinkTests.secret)
        #expect(try seal.open(WebhookSinkTests.secret) == WebhookSinkTests.secret, "a secret stored before the key came is used as it is")
        #expect(throws: WebhookSecretSeal.Failure.self) { try WebhookSecretSeal(base64: Self.otherKey).open(sealed) }
        #expect(throws: WebhookSecretSeal.Failure.self) { try seal.open("sealed:v1:AAAA") }
        #expect(throws: WebhookSecretSeal.Failure.self) { try WebhookSecretSeal(base64: "c2hvcnQ=") }
        let definition = try WebhookSinkDefinition(name: "s", url: "https://x.example", secrets: [WebhookSinkTests.secret])
        #expect(try definition.sealed(with: seal).opened(with: seal) == definition)
        #expect(throws: WebhookSecretSeal.Failure.self) { try definition.sealed(with: seal).opened(with: nil) }
    }

    @Test func theStoreKeepsSealedSecretsAndAGatewayWithoutTheKeyCannotSign() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fluxgate-sealed-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try SQLiteEventStore(path: directory.appendingPathComponent("events.sqlite").path)
        let seal = try WebhookSecretSeal(base64: Self.key)
        try await WebhookSinkTests.withReceiver { receiver in
            try await WebhookSinkTests.appendRound(store, aggregates: 0..<3, events: 2)
            let body = #"{"url": "\#(receiver.url)", "secret": "\#(WebhookSinkTests.secret)", "backoff_ms": 10}"#
            try await withTestGateway(await TestGateway.start(store: store) { $0.webhookSecretSeal = seal }) { gateway in
                #expect(try await gateway.request(.PUT, "/sinks/sealed", json: body).status == .created)
                try await WebhookSinkTests.waitForCheckpoint(gateway, "sealed", 6)
                let shown = try await WebhookSinkTests.sink(gateway, "sealed")
                #expect(shown["secret_fingerprints"] as? [String] == [WebhookSignature.fingerprint(of: WebhookSinkTests.secret)], "\(shown)")
            }
            let stored = try #require(try await store.webhookSink(named: "sealed"))
            #expect(stored.definition.secrets.count == 1 && stored.definition.secrets[0].hasPrefix("sealed:v1:"))
            #expect(!stored.definition.secrets[0].contains(WebhookSinkTests.secret))
            #expect(WebhookSinkTests.positions(try receiver.events()).sorted() == Array(1...6))
            #expect(!receiver.child.errorOutput.contains("bad signature"))

            // Without the key: nothing is signed (said once, not at every look of the registry for idle sinks), the
            // API says the secret is sealed, and a PUT that keeps it is refused.
            try await WebhookSinkTests.appendRound(store, aggregates: 3..<4, events: 1)
            let errors = ErrorLog()
            try await withTestGateway(await TestGateway.start(store: store) { $0.logger = Logger(label: "sealed") { _ in errors } }) { gateway in
                try await Task.sleep(for: WebhookSinkRegistry.watchInterval * 2 + .seconds(1))
                #expect(errors.messages.filter { $0.contains("cannot sign") }.count == 1, "\(errors.messages)")
                let shown = try await WebhookSinkTests.sink(gateway, "sealed")
                #expect(shown["secret_fingerprints"] as? [String] == ["sealed"] && shown["checkpoint"] as? Int == 6, "\(shown)")
                let kept = try await gateway.request(.PUT, "/sinks/sealed", json: #"{"url": "\#(receiver.url)"}"#)
                #expect(kept.status == .conflict && kept.text.contains("--sinks-key-file"), "\(kept.status) \(kept.text)")
                // A new secret replaces it (stored as given: this gateway has no key).
                let replaced = try await gateway.request(.PUT, "/sinks/sealed", json: #"{"url": "\#(receiver.url)", "secret": "\#(WebhookSinkTests.secret)"}"#)
                #expect(replaced.status == .ok, "\(replaced.text)")
                try await WebhookSinkTests.waitForCheckpoint(gateway, "sealed", 7)
            }
            try await store.close()
        }
    }

    @Test func aRotatedKeyOpensTheOldSealingAndEachStartSealsAgainWithTheNewKey() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fluxgate-rotated-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try SQLiteEventStore(path: directory.appendingPathComponent("events.sqlite").path)
        let (old, new) = (try WebhookSecretSeal(base64: Self.key), try WebhookSecretSeal(base64: Self.otherKey))
        let rotating = try WebhookSecretSeal(base64: Self.otherKey, previous: [Self.key])
        try await WebhookSinkTests.withReceiver { receiver in
            let body = #"{"url": "\#(receiver.url)", "secret": "\#(WebhookSinkTests.secret)", "backoff_ms": 10}"#
            // A sink stored as given (no key yet), then sealed at the first start with a key.
            try await withTestGateway(await TestGateway.start(store: store)) { gateway in
                let created = try await gateway.request(.PUT, "/sinks/rotated", json: body)
                #expect(created.status == .created)
                #expect(try await gateway.request(.PUT, "/sinks/gone", json: body).status == .created)
            }
            #expect(try await store.webhookSink(named: "rotated")?.definition.secrets == [WebhookSinkTests.secret])
            // A sink its receiver disabled (410) is sealed again too, and stays disabled.
            try await store.disableWebhookSink(named: "gone", reason: "410 Gone")
            try await withTestGateway(await TestGateway.start(store: store) { $0.webhookSecretSeal = old }) { _ in () }
            let sealedOld = try #require(try await store.webhookSink(named: "rotated")?.definition.secrets.first)
            #expect(try old.open(sealedOld) == WebhookSinkTests.secret)
            #expect(throws: WebhookSecretSeal.Failure.self) { try new.open(sealedOld) }
            // The rotation: the new key with the old one as previous seals it again with the new key, and delivers.
            try await WebhookSinkTests.appendRound(store, aggregates: 0..<2, events: 2)
            try await withTestGateway(await TestGateway.start(store: store) { $0.webhookSecretSeal = rotating }) { gateway in
                try await WebhookSinkTests.waitForCheckpoint(gateway, "rotated", 4)
            }
            let sealedNew = try #require(try await store.webhookSink(named: "rotated")?.definition.secrets.first)
            #expect(try new.open(sealedNew) == WebhookSinkTests.secret)
            let gone = try #require(try await store.webhookSink(named: "gone"))
            #expect(!gone.enabled && gone.disabledReason == "410 Gone")
            #expect(try new.open(try #require(gone.definition.secrets.first)) == WebhookSinkTests.secret)
            // The old key can go.
            try await WebhookSinkTests.appendRound(store, aggregates: 2..<3, events: 1)
            try await withTestGateway(await TestGateway.start(store: store) { $0.webhookSecretSeal = new }) { gateway in
                try await WebhookSinkTests.waitForCheckpoint(gateway, "rotated", 5)
            }
            #expect(WebhookSinkTests.positions(try receiver.events()).sorted() == Array(1...5))
            #expect(!receiver.child.errorOutput.contains("bad signature"))
            try await store.close()
        }
    }
}

/// Keeps the messages logged at `error` and above.
final class ErrorLog: LogHandler, @unchecked Sendable {
    private let lines = Mutex<[String]>([])
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .error
    var messages: [String] { lines.withLock { $0 } }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        lines.withLock { $0.append(event.message.description) }
    }
}
