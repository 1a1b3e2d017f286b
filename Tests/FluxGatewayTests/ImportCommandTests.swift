import FluxCore
@testable import FluxGateway
import FluxSQLite
import FluxTesting
import Foundation
import Testing

/// `fluxgate import URL` as a user runs it, against a stand-in for a running service of the original flux framework.
@Suite struct ImportCommandTests {
    /// A fresh SQLite store path; the directory is removed by `cleanUp`.
    struct Scratch {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fluxgate-import-\(UUID().uuidString)")
        var storePath: String { directory.appendingPathComponent("events.sqlite").path }
        func cleanUp() { try? FileManager.default.removeItem(at: directory) }
    }

    func runImport(_ arguments: [String]) async throws -> (status: Int32?, output: String, errors: String) {
        let run = try await ChildProcess.run(try ChildProcess.fluxgateExecutable(), ["import"] + arguments, timeout: .seconds(60))
        return (run.status, run.outputLines.joined(separator: "\n"), run.errorOutput)
    }

    /// A Fluxgate store holding the original's events (the same ids, types and payloads; the aggregate id from the
    /// payload's `account_id`), to serve as an import's source.
    static func fluxgateStore(holding history: [OriginalFluxFeedServer.Event]) async throws -> InMemoryEventStore {
        let store = InMemoryEventStore()
        for event in history {
            let account = String(try #require(event.payload.firstMatch(of: /"account_id":"([^"]+)"/)).1)
            try await store.append(AppendRequest(
                aggregateID: account, aggregateName: "Account", expectedVersion: .any,
                events: [NewEvent(eventID: event.id, eventType: event.eventType, payload: EventPayload(trustedJSON: Array(event.payload.utf8)))]
            ))
        }
        return store
    }

    func storedEvents(_ path: String) async throws -> [RecordedEvent] {
        let store = try SQLiteEventStore(path: path)
        let events = try await store.read(after: .start, limit: 10_000)
        try await store.close()
        return events
    }

    @Test func importsTheBankHistoryIntoSQLiteThenRerunsWithoutStoringTwice() async throws {
        let history = OriginalFluxFeedServer.bankHistory()
        let feed = try await OriginalFluxFeedServer.start(events: history)
        let scratch = Scratch()
        defer { scratch.cleanUp() }
        let arguments = [
            feed.baseURL, "--store", "sqlite:\(scratch.storePath)", "--aggregate-id-field", "account_id",
            "--aggregate-name-map", "*account.Account=Account",
        ]

        let first = try await runImport(arguments)
        #expect(first.status == 0, "\(first.errors)")
        #expect(first.output.contains("38 new, 0 already there"), "\(first.output)")
        #expect(first.errors.contains("imported 20 events (20 new, 0 already there); next offset 20"), "\(first.errors)")

        let stored = try await storedEvents(scratch.storePath)
        #expect(stored.count == history.count)
        #expect(stored.map(\.eventID) == history.map(\.id), "every event once, in feed order")
        #expect(stored.map(\.eventType) == history.map(\.eventType))
        #expect(stored.map(\.payload.bytes) == history.map { Array($0.payload.utf8) }, "payload bytes exactly as served")
        #expect(stored.allSatisfy { $0.aggregateName == "Account" })
        var expectedVersions: [String: Int64] = [:]
        for (event, original) in zip(stored, history) {
            let account = try #require(original.payload.firstMatch(of: /"account_id":"([^"]+)"/)).1
            #expect(event.aggregateID == account)
            let version = expectedVersions[String(account), default: -1] + 1
            expectedVersions[String(account)] = version
            #expect(event.version == version, "versions 0, 1, 2, … per account in feed order")
        }

        let fetchesBefore = feed.payloadFetches
        let second = try await runImport(arguments)
        #expect(second.status == 0, "\(second.errors)")
        #expect(second.output.contains("0 new, 38 already there (all already there)"), "\(second.output)")
        #expect(feed.payloadFetches - fetchesBefore == history.count, "a re-run checks each payload against the stored copy")
        #expect(try await storedEvents(scratch.storePath).count == history.count, "nothing stored twice")
        await feed.stop()
    }

    /// `--from-offset N` reads from the feed's offset N: the events before it are neither fetched nor stored.
    @Test func fromOffsetStartsLater() async throws {
        let history = OriginalFluxFeedServer.bankHistory()
        let feed = try await OriginalFluxFeedServer.start(events: history)
        let scratch = Scratch()
        defer { scratch.cleanUp() }
        let result = try await runImport([
            feed.baseURL, "--store", "sqlite:\(scratch.storePath)", "--aggregate-id-field", "account_id", "--from-offset", "20",
        ])
        #expect(result.status == 0, "\(result.errors)")
        #expect(result.output.contains("\(history.count - 20) new, 0 already there"), "\(result.output)")
        #expect(feed.payloadFetches == history.count - 20, "only the entries from offset 20 are fetched")
        let stored = try await storedEvents(scratch.storePath)
        #expect(stored.map(\.eventID) == history.dropFirst(20).map(\.id))
        await feed.stop()
    }

    /// From a Fluxgate gateway, `--page-size N` asks for pages of N (`limit=`), which the original ignores: the bank's
    /// 38 events come in one page instead of two, and every event is stored once, in order, with its payload.
    @Test func pageSizeAsksAFluxgateSourceForBiggerPages() async throws {
        let history = OriginalFluxFeedServer.bankHistory()
        let source = try await Self.fluxgateStore(holding: history)
        let scratch = Scratch()
        defer { scratch.cleanUp() }
        try await withTestGateway(try await TestGateway.start(store: source)) { gateway in
            let result = try await runImport([
                "http://127.0.0.1:\(gateway.port)", "--store", "sqlite:\(scratch.storePath)", "--aggregate-id-field", "account_id",
                "--page-size", "50",
            ])
            #expect(result.status == 0, "\(result.errors)")
            #expect(result.errors.contains("imported 38 events (38 new, 0 already there); next offset 38"), "one page of 38: \(result.errors)")
            #expect(!result.errors.contains("next offset 20"), "not the original's pages of 20")
        }
        let stored = try await storedEvents(scratch.storePath)
        #expect(stored.map(\.eventID) == history.map(\.id))
        #expect(stored.map(\.payload.bytes) == history.map { Array($0.payload.utf8) })
    }

    /// An https:// source is verified against `--ca-file`; without it, the system's trust store refuses the test CA
    /// and the import stops before storing anything, naming the URL.
    @Test func anHTTPSSourceIsVerifiedAgainstTheCAFile() async throws {
        let certificates = try await TestCertificates.shared()
        let history = Array(OriginalFluxFeedServer.bankHistory().prefix(5))
        let source = try await Self.fluxgateStore(holding: history)
        let scratch = Scratch()
        defer { scratch.cleanUp() }
        let gateway = try await TestGateway.start(store: source) { configuration in
            configuration.tls = try? GatewayTLS(certificateChainFile: certificates.certificateFile, privateKeyFile: certificates.keyFile)
        }
        try await withTestGateway(gateway) { gateway in
            let url = "https://localhost:\(gateway.port)"
            let untrusted = try await runImport([url, "--store", "sqlite:\(scratch.storePath)", "--aggregate-id-field", "account_id"])
            #expect(untrusted.status == 1, "\(untrusted.errors)")
            #expect(untrusted.errors.contains(url), "the failure names the URL: \(untrusted.errors)")
            let trusted = try await runImport([
                url, "--store", "sqlite:\(scratch.storePath)", "--aggregate-id-field", "account_id", "--ca-file", certificates.caFile,
            ])
            #expect(trusted.status == 0, "\(trusted.errors)")
            #expect(trusted.output.contains("5 new, 0 already there"), "\(trusted.output)")
        }
        #expect(try await storedEvents(scratch.storePath).map(\.eventID) == history.map(\.id))
    }

    @Test func aPayloadWithoutTheIDFieldStopsTheImportUnlessSkipped() async throws {
        var history = Array(OriginalFluxFeedServer.bankHistory().prefix(25))
        history[22].payload = #"{"transaction_id":"lost","amount":5}"#
        let feed = try await OriginalFluxFeedServer.start(events: history)
        let scratch = Scratch()
        defer { scratch.cleanUp() }
        let arguments = [
            feed.baseURL, "--store", "sqlite:\(scratch.storePath)", "--aggregate-id-field", "account_id", "--strip-pointer-names",
        ]

        let stopped = try await runImport(arguments)
        #expect(stopped.status == 1)
        #expect(stopped.errors.contains("event \(history[22].id)"), "\(stopped.errors)")
        #expect(stopped.errors.contains("offset 22") && stopped.errors.contains("no \"account_id\" field"), "\(stopped.errors)")
        #expect(stopped.errors.contains("--skip-missing-id"), "the message says what to do")
        let storedBefore = try await storedEvents(scratch.storePath)
        #expect(storedBefore.map(\.eventID) == history.prefix(22).map(\.id), "what was read before the bad event is stored")
        #expect(storedBefore.allSatisfy { $0.aggregateName == "account.Account" }, "--strip-pointer-names")

        let skipping = try await runImport(arguments + ["--skip-missing-id"])
        #expect(skipping.status == 0, "\(skipping.errors)")
        #expect(skipping.output.contains("2 new, 22 already there, 1 skipped without account_id"), "\(skipping.output)")
        #expect(try await storedEvents(scratch.storePath).map(\.eventID) == history.enumerated().filter { $0.offset != 22 }.map(\.element.id))
        await feed.stop()
    }

    @Test func aFailedPayloadFetchIsRetried() async throws {
        let history = Array(OriginalFluxFeedServer.bankHistory().prefix(5))
        let feed = try await OriginalFluxFeedServer.start(events: history, failOnce: [history[3].id])
        let scratch = Scratch()
        defer { scratch.cleanUp() }
        let result = try await runImport([feed.baseURL, "--store", "sqlite:\(scratch.storePath)", "--aggregate-id-field", "account_id"])
        #expect(result.status == 0, "\(result.errors)")
        #expect(feed.payloadFetches == history.count + 1, "the 500 was retried once")
        #expect(try await storedEvents(scratch.storePath).map(\.eventID) == history.map(\.id))
        await feed.stop()
    }

    @Test func anUnreachableFeedFailsNamingTheURL() async throws {
        // Held closed for the whole test: a port just closed may be taken by another test's server at once.
        let closed = try ClosedPort()
        let url = "http://127.0.0.1:\(closed.port)"
        let result = try await runImport([url, "--store", "memory", "--aggregate-id-field", "account_id"])
        withExtendedLifetime(closed) {}
        #expect(result.status == 1)
        #expect(result.errors.contains("\(url)/events?offset=0"), "\(result.errors)")
    }

    @Test func aPageThatIsNotJSONOrNot200StopsTheImport() async throws {
        let scratch = Scratch()
        defer { scratch.cleanUp() }
        // A Fluxgate gateway's page is JSON but not the original's format at the wrong path; a 404 is refused.
        let feed = try await OriginalFluxFeedServer.start(events: [])
        let result = try await runImport([feed.baseURL + "/nowhere", "--store", "memory", "--aggregate-id-field", "account_id"])
        #expect(result.status == 1)
        #expect(result.errors.contains("404"), "\(result.errors)")
        await feed.stop()
    }
}
