import ArgumentParser
import Foundation

/// `fluxgate sinks …`: manage a gateway's webhook sinks over its HTTP API (README "Webhook sinks").
struct SinksCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sinks",
        abstract: "Manage a gateway's webhook sinks: list, show, create or change, delete, parked events, replay.",
        discussion: """
            A sink POSTs each matching event to a URL, signed as Standard Webhooks
            say, in order per aggregate, retrying and parking like a consumer group.
            Every subcommand talks to a running gateway (--url, default
            http://127.0.0.1:8080). With access control: a token with the
            groups:admin scope (groups for list, show and parked), from --token or
            $FLUXGATE_TOKEN.

            Examples:
              fluxgate sinks create billing --target https://example.com/hooks \\
                --aggregate-name Account
              fluxgate sinks list
              fluxgate sinks parked billing
              fluxgate sinks replay billing
              # rotating the secret: both sign until the receivers use the new one
              fluxgate sinks create billing --target https://example.com/hooks \\
                --secret whsec_NEW --previous-secret whsec_OLD
            """,
        subcommands: [List.self, Show.self, Create.self, Delete.self, Parked.self, Replay.self]
    )

    typealias Connection = GroupsCommand.Connection

    /// A sink name as the gateway accepts it (checked here so that a typo is said before any request).
    static func checkName(_ name: String) throws {
        guard (1...120).contains(name.utf8.count), name.utf8.allSatisfy({ byte in
            (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte) || byte == 0x2E || byte == 0x5F || byte == 0x2D
        }) else {
            throw ValidationError("a sink name is 1 to 120 of A-Z a-z 0-9 . _ -; \(name.debugDescription) is not")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the sinks: URL, enabled, checkpoint, lag and parked events.")
        @OptionGroup var connection: Connection
        @Flag(help: "Print the gateway's JSON instead of a table.") var json = false

        func run() async throws {
            let answer = try await connection.call(.GET, "/sinks")
            let sinks = (answer as? [String: Any])?["sinks"] as? [[String: Any]] ?? []
            if json { return GroupsCommand.printJSON(answer) }
            let rows = sinks.map { sink in
                [sink["name"], sink["url"], sink["enabled"].map { ($0 as? Bool) == true ? "yes" : "no" }, sink["checkpoint"], sink["lag"], sink["parked"]]
                    .map { $0.map { "\($0)" } ?? "-" }
            }
            let header = ["NAME", "URL", "ENABLED", "CHECKPOINT", "LAG", "PARKED"]
            let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
            for row in [header] + rows {
                print(row.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(separator: "  "))
            }
            if sinks.isEmpty { print("(no sinks; create one with: fluxgate sinks create NAME --target URL)") }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one sink: definition (secrets as fingerprints), state, checkpoint, lag, parked.")
        @OptionGroup var connection: Connection
        @Argument(help: "The sink's name.") var name: String
        func validate() throws { try SinksCommand.checkName(name) }
        func run() async throws { GroupsCommand.printJSON(try await connection.call(.GET, "/sinks/\(name)")) }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "create",
            abstract: "Create a sink, or change an existing one (its checkpoint and parked events stay); either way it is enabled.",
            discussion: "Without --secret a new sink gets a secret made for it, printed once in the answer; keep it for the receiver.",
            aliases: ["update"])
        @OptionGroup var connection: Connection
        @Argument(help: "The sink's name: 1 to 120 of A-Z a-z 0-9 . _ -") var name: String
        @Option(help: "The receiver's URL (http:// or https://).") var target: String
        @Option(help: "The signing secret, whsec_ and base64 (default: kept, or made for a new sink).") var secret: String?
        @Option(help: "The secret being rotated out: deliveries carry a signature with each.") var previousSecret: String?
        @Option(name: .customLong("aggregate-name"), help: "Deliver only events of this aggregate name (repeatable).") var aggregateNames: [String] = []
        @Option(name: .customLong("event-type"), help: "Deliver only events of this type (repeatable).") var eventTypes: [String] = []
        @Option(name: .customLong("aggregate-id"), help: "Deliver only events of this aggregate id (repeatable).") var aggregateIDs: [String] = []
        @Option(help: "Where a new sink starts: 0, head or a position (it delivers the events after it).") var start: String?
        @Option(help: "Deliveries in flight at once, each of another aggregate (1 to 64).") var concurrency: Int?
        @Option(help: "Seconds one delivery may take (0.1 to 60).") var timeout: Double?
        @Option(help: "Failed deliveries before an event is parked (1 to 1000).") var maximumAttempts: Int?
        @Option(help: "Seconds before the second attempt, doubled for each further one (0 to 3600).") var backoff: Double?
        @Option(help: "The longest wait between attempts, in seconds (0 to 3600).") var maximumBackoff: Double?
        @Option(help: "A PEM file of the CAs the https receiver's certificate must chain to, instead of the system's (a private CA).")
        var receiverCAFile: String?

        func validate() throws {
            try SinksCommand.checkName(name)
            guard let scheme = URLComponents(string: target)?.scheme?.lowercased(), scheme == "http" || scheme == "https" else {
                throw ValidationError("--target must be an http:// or https:// URL, not \(target.debugDescription)")
            }
            if let start { try GroupsCommand.checkPosition(start, option: "--start") }
            if let concurrency, !(1...64).contains(concurrency) { throw ValidationError("--concurrency is 1 to 64, not \(concurrency)") }
            if let timeout, !(timeout.isFinite && (0.1...60).contains(timeout)) { throw ValidationError("--timeout is 0.1 to 60 seconds, not \(timeout)") }
            if let maximumAttempts, !(1...1000).contains(maximumAttempts) { throw ValidationError("--maximum-attempts is 1 to 1000, not \(maximumAttempts)") }
            for (option, seconds) in [("--backoff", backoff), ("--maximum-backoff", maximumBackoff)] {
                if let seconds, !(seconds.isFinite && (0...3600).contains(seconds)) { throw ValidationError("\(option) is 0 to 3600 seconds, not \(seconds)") }
            }
        }

        func run() async throws {
            var body: [String: Any] = ["url": target]
            if !(aggregateNames.isEmpty && eventTypes.isEmpty && aggregateIDs.isEmpty) {
                body["filter"] = ["aggregate_names": aggregateNames, "event_types": eventTypes, "aggregate_ids": aggregateIDs]
            }
            if let secret { body["secret"] = secret }
            if let previousSecret { body["previous_secret"] = previousSecret }
            if let start { body["start"] = start }
            func milliseconds(_ seconds: Double) -> Int { Int((seconds * 1000).rounded()) }
            if let concurrency { body["concurrency"] = concurrency }
            if let timeout { body["timeout_ms"] = milliseconds(timeout) }
            if let maximumAttempts { body["maximum_attempts"] = maximumAttempts }
            if let backoff { body["backoff_ms"] = milliseconds(backoff) }
            if let maximumBackoff { body["maximum_backoff_ms"] = milliseconds(maximumBackoff) }
            if let receiverCAFile {
                guard let data = FileManager.default.contents(atPath: receiverCAFile), data.count <= 64 << 10 else {
                    throw ValidationError("cannot read --receiver-ca-file \(receiverCAFile) (a PEM file of at most 64 KiB)")
                }
                body["ca_certificates"] = String(decoding: data, as: UTF8.self)
            }
            let json = String(decoding: try JSONSerialization.data(withJSONObject: body, options: [.sortedKeys]), as: UTF8.self)
            GroupsCommand.printJSON(try await connection.call(.PUT, "/sinks/\(name)", json: json))
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a sink with its checkpoint and parked events.")
        @OptionGroup var connection: Connection
        @Argument(help: "The sink's name.") var name: String
        func validate() throws { try SinksCommand.checkName(name) }
        func run() async throws {
            _ = try await connection.call(.DELETE, "/sinks/\(name)")
            print("deleted sink \(name)")
        }
    }

    struct Parked: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List a sink's parked events: position, attempts, last reason.")
        @OptionGroup var connection: Connection
        @Argument(help: "The sink's name.") var name: String
        func validate() throws { try SinksCommand.checkName(name) }
        func run() async throws { GroupsCommand.printJSON(try await connection.call(.GET, "/sinks/\(name)/parked")) }
    }

    struct Replay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Deliver a parked event (or every parked event) again.")
        @OptionGroup var connection: Connection
        @Argument(help: "The sink's name.") var name: String
        @Option(help: "The parked event's position (default: every parked event).") var position: Int64?

        func validate() throws {
            try SinksCommand.checkName(name)
            if let position, position <= 0 { throw ValidationError("--position is a position (an integer > 0), not \(position)") }
        }

        func run() async throws {
            let path = position.map { "/sinks/\(name)/parked/\($0)/replay" } ?? "/sinks/\(name)/replay"
            _ = try await connection.call(.POST, path)
            print(position.map { "replaying event \($0) of sink \(name)" } ?? "replaying every parked event of sink \(name)")
        }
    }
}
