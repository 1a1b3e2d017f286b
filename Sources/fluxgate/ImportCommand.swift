import ArgumentParser
import FluxConsumer
import FluxCore
import Foundation

/// `fluxgate import URL`: copies a running flux (Go) service's history into a Fluxgate store through its feed.
struct ImportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Copy a running flux service's history into a Fluxgate store by reading its event feed.",
        discussion: """
            Reads the original flux framework's feed as its consumer did: GET URL/events?offset=N for a page of \
            entries, then each entry's url for the payload. Each event is stored with its event_id, event_type and \
            payload bytes exactly as served, under its aggregate_name (or the name --aggregate-name-map gives it), \
            in feed order. The original's feed has no aggregate id: it is read from the payload field named by \
            --aggregate-id-field (a string or an integer). Versions are numbered per aggregate in feed order \
            (0, 1, 2, …); the feed's aggregate_version is not used.

            Re-running is safe: an event whose event_id is already in the store is checked (same type, aggregate \
            and payload, else the import stops) and not stored again. After a crash, run the same command again; \
            it starts at offset 0 and skips what is there (--from-offset N starts later, when you know every \
            event before N is stored). Progress goes to stderr after each page, the summary to stdout. \
            Requests are retried with backoff on network errors and 5xx answers; any other failure stops the \
            import with exit status 1, after storing the events read before it.

            Examples:
              fluxgate import http://127.0.0.1:3000 --aggregate-id-field account_id \\
                --store sqlite:bank.sqlite
              fluxgate import http://flux.internal:3000 --aggregate-id-field account_id \\
                --aggregate-name-map '*account.Account=Account' \\
                --store postgres://fluxgate:secret@db:5432/events
            """
    )

    @Argument(help: "The flux service's base URL (its feed is URL/events), e.g. http://127.0.0.1:3000.")
    var url: String

    @Option(help: "The event store to import into: sqlite:PATH, postgres://USER:PASSWORD@HOST:PORT/DATABASE or memory.")
    var store = StoreLocation.sqlite(path: StoreLocation.defaultSQLitePath)

    @Option(help: "The payload field that holds the aggregate id, e.g. account_id (the original's feed has none).")
    var aggregateIDField: String

    @Option(help: "Store an aggregate_name under another name: 'FEED=STORED', e.g. '*account.Account=Account' (repeatable).")
    var aggregateNameMap: [String] = []

    @Flag(help: "Drop the leading * of Go pointer type names (*account.Account becomes account.Account) not mapped by --aggregate-name-map.")
    var stripPointerNames = false

    @Flag(help: "Skip (and count) events whose payload has no aggregate id field, instead of stopping.")
    var skipMissingID = false

    @Option(help: "Start at this feed offset instead of 0 (every event before it must already be stored).")
    var fromOffset: Int64 = 0

    @Option(help: "Ask for pages of this many entries (sent as limit=; the original serves 20 whatever is asked).")
    var pageSize: Int?

    @Option(help: "With an https:// URL: trust only the CA certificates in this PEM file instead of the system trust store.")
    var caFile: String?

    func validate() throws {
        guard fromOffset >= 0 else { throw ValidationError("--from-offset must be 0 or more") }
        if let pageSize, !(1...10_000).contains(pageSize) { throw ValidationError("--page-size must be between 1 and 10000") }
        guard !aggregateIDField.isEmpty else { throw ValidationError("--aggregate-id-field must name a payload field") }
        _ = try nameMap()
        guard let parsed = URLComponents(string: url), let scheme = parsed.scheme?.lowercased(), ["http", "https"].contains(scheme),
            parsed.host?.isEmpty == false, parsed.query == nil
        else {
            throw ValidationError("URL must be a flux service's base URL like http://127.0.0.1:3000, got \(FeedHTTPClient.redacted(url))")
        }
        if caFile != nil, scheme != "https" { throw ValidationError("--ca-file is for TLS: use an https:// URL with it") }
    }

    private func nameMap() throws -> [String: String] {
        var map: [String: String] = [:]
        for item in aggregateNameMap {
            guard let equals = item.lastIndex(of: "="), equals != item.startIndex, item.index(after: equals) != item.endIndex else {
                throw ValidationError("--aggregate-name-map takes FEED=STORED, e.g. '*account.Account=Account'; got \(item)")
            }
            map[String(item[..<equals])] = String(item[item.index(after: equals)...])
        }
        return map
    }

    func run() async throws {
        var base = url
        while base.hasSuffix("/") { base.removeLast() }
        if base.hasSuffix("/events") { base.removeLast("/events".count) }
        let secure = base.lowercased().hasPrefix("https:")
        let client = FeedHTTPClient(tls: secure ? try ClientTLS(caFile: caFile) : nil)
        let opened = try await store.open()
        var options = FluxFeedImporter.Options(baseURL: base, aggregateIDField: aggregateIDField)
        options.aggregateNameMap = try nameMap()
        options.stripPointerNames = stripPointerNames
        options.skipMissingID = skipMissingID
        options.fromOffset = fromOffset
        options.pageSize = pageSize
        let importer = FluxFeedImporter(options: options, store: opened.store, client: client) { summary in
            Self.standardError("imported \(summary.read) events (\(summary.stored) new, \(summary.alreadyThere) already there\(summary.skippedWithoutID > 0 ? ", \(summary.skippedWithoutID) skipped without \(options.aggregateIDField)" : "")); next offset \(summary.nextOffset)")
        }
        let outcome: Result<FluxFeedImporter.Summary, any Error>
        do {
            outcome = .success(try await importer.run())
        } catch {
            outcome = .failure(error)
        }
        await client.close()
        try? await opened.close()
        switch outcome {
        case .success(let summary):
            let skipped = summary.skippedWithoutID > 0 ? ", \(summary.skippedWithoutID) skipped without \(aggregateIDField)" : ""
            let all = summary.read > 0 && summary.alreadyThere == summary.read ? " (all already there)" : ""
            print("import complete: \(summary.read) events read from \(FeedHTTPClient.redacted(base)) offsets \(fromOffset)..<\(summary.nextOffset) into \(store): \(summary.stored) new, \(summary.alreadyThere) already there\(skipped)\(all)")
        case .failure(let error):
            if let stopped = error as? FluxFeedImporter.Stopped {
                let done = stopped.summary
                Self.standardError("import failed at offset \(done.nextOffset) after \(done.stored) new events (\(done.alreadyThere) already there, \(done.skippedWithoutID) skipped): \(stopped.reason)")
            } else {
                Self.standardError("import failed: \(error)")
            }
            throw ExitCode.failure
        }
    }

    private static func standardError(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
}
