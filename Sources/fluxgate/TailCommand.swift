import ArgumentParser
import FluxConsumer
import FluxCore
import FluxWire
import Foundation
import Synchronization

/// `fluxgate tail URL`: prints a gateway's events as JSON lines, live.
struct TailCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tail",
        abstract: "Print a gateway's events as JSON lines: the backlog, then live events as they commit.",
        discussion: """
            Uses the WebSocket push channel, and long-polling of the JSON feed when the upgrade is refused. While the gateway cannot be reached it retries, and says so on stderr.

            Examples:
              fluxgate tail http://127.0.0.1:8080
              fluxgate tail http://127.0.0.1:8080 --after 1000 \\
                --event-type account.AccountCredited
              fluxgate tail https://feed.example.com --ca-file ca.pem   # a private CA

            Stop with Ctrl-C.
            """
    )

    @Argument(help: "The gateway's URL (http://host:port or ws://host:port; https:// or wss:// for TLS).")
    var url: String

    @Option(help: "Start after this position (0: everything).")
    var after: Int64 = 0

    @Option(name: .customLong("event-type"), help: "Only events of this type (repeatable).")
    var eventTypes: [String] = []

    @Option(name: .customLong("aggregate-name"), help: "Only events of this aggregate name (repeatable).")
    var aggregateNames: [String] = []

    @Option(name: .customLong("aggregate-id"), help: "Only events of this aggregate id (repeatable).")
    var aggregateIDs: [String] = []

    @Option(help: "Exit after printing this many events (0: never).")
    var limit = 0

    @Option(help: "With https:// or wss://: trust only the CA certificates in this PEM file instead of the system trust store.")
    var caFile: String?

    @Option(help: "A bearer token for a gateway with access control (default: $FLUXGATE_TOKEN).")
    var token: String?

    func validate() throws {
        guard after >= 0 else { throw ValidationError("--after must be 0 or more") }
        _ = try endpoint()
    }

    private func endpoint() throws -> (host: String, port: Int, base: String, secure: Bool) {
        guard let parsed = URL(string: url), let scheme = parsed.scheme, ["http", "ws", "https", "wss"].contains(scheme),
            let host = parsed.host
        else {
            throw ValidationError("URL must look like http://127.0.0.1:8080, got \(url)")
        }
        let secure = scheme == "https" || scheme == "wss"
        if caFile != nil, !secure {
            throw ValidationError("--ca-file is for TLS: use an https:// or wss:// URL with it, got \(url)")
        }
        let port = parsed.port ?? (secure ? 443 : 80)
        return (host, port, "\(secure ? "https" : "http")://\(host):\(port)", secure)
    }

    func run() async throws {
        let (host, port, base, secure) = try endpoint()
        var configuration = EventConsumer.Configuration()
        configuration.logger.logLevel = .error
        if secure { configuration.tls = try ClientTLS(caFile: caFile) }
        configuration.accessToken = token ?? ProcessInfo.processInfo.environment["FLUXGATE_TOKEN"]
        // Silence would look like an empty feed: say what it waits for (once per cause, then every 10 s at most).
        let retries = RetryReporter(url: base)
        configuration.onRetry = { retries.report($0) }
        let consumer = EventConsumer(
            host: host, port: port, name: "tail", checkpoints: InMemoryCheckpointStore(),
            filter: EventFilter(aggregateNames: Set(aggregateNames), eventTypes: Set(eventTypes), aggregateIDs: Set(aggregateIDs)),
            start: Position(after), configuration: configuration
        )
        let limit = self.limit
        let printed = Counter()
        let signals = [SIGINT, SIGTERM].map { signal in
            let source = DispatchSource.makeSignalSource(signal: signal)
            Foundation.signal(signal, SIG_IGN)
            source.setEventHandler { consumer.stop() }
            source.resume()
            return source
        }
        defer { signals.forEach { $0.cancel() } }
        try await consumer.run { event in
            FileHandle.standardOutput.write(Data((event.envelopeJSON(baseURL: base) + "\n").utf8))
            if limit > 0, printed.increment() >= limit { consumer.stop() }
        }
    }
}

/// Tells the user on stderr why `tail` prints nothing: the gateway cannot be reached and it keeps retrying.
final class RetryReporter: Sendable {
    private let url: String
    private let last = Mutex<(cause: String, at: ContinuousClock.Instant)?>(nil)

    init(url: String) { self.url = url }

    func report(_ notice: EventConsumer.Configuration.RetryNotice) {
        let cause = Self.cause(of: notice.error)
        let now = ContinuousClock.now
        let due = last.withLock { last in
            if let previous = last, previous.cause == cause, now - previous.at < .seconds(10) { return false }
            last = (cause, now)
            return true
        }
        guard due else { return }
        let seconds = Double(notice.delay.components.seconds) + Double(notice.delay.components.attoseconds) / 1e18
        let line = "fluxgate tail: waiting for the gateway at \(url): \(cause); retrying in \(String(format: "%.1f", seconds)) s (Ctrl-C stops)\n"
        FileHandle.standardError.write(Data(line.utf8))
    }

    /// A short cause: the system's words for a socket error (connection refused, …), else the error's own.
    static func cause(of error: any Error) -> String {
        let text = "\(error)"
        for (needle, words) in [
            ("refused", "connection refused"), ("ECONNREFUSED", "connection refused"), ("reset", "connection reset"),
            ("timed out", "timed out"), ("timeout", "timed out"), ("unreachable", "network unreachable"),
            ("resolve", "the host name does not resolve"), ("not known", "the host name does not resolve"),
        ] where text.localizedCaseInsensitiveContains(needle) {
            return words
        }
        return String(text.prefix(200))
    }
}

private final class Counter: Sendable {
    private let value = Mutex(0)
    func increment() -> Int { value.withLock { $0 += 1; return $0 } }
}
