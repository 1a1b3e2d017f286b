import ArgumentParser
import FluxConsumer
import Foundation
import NIOCore
import NIOHTTP1

/// `fluxgate groups …`: manage a gateway's consumer groups over its HTTP API (README "Consumer groups").
struct GroupsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "groups",
        abstract: "Manage a gateway's consumer groups: list, show, create or change, delete, reset, parked events, replay.",
        discussion: """
            Every subcommand talks to a running gateway (--url, default http://127.0.0.1:8080). With access
            control: a token with the groups:admin scope (groups for list, show and parked), from --token or
            $FLUXGATE_TOKEN.

            Examples:
              fluxgate groups create billing --aggregate-name Account
              fluxgate groups list
              fluxgate groups reset billing --to 0    # rebuild from 0
              fluxgate groups parked billing
              fluxgate groups replay billing --position 42
            """,
        subcommands: [List.self, Show.self, Create.self, Delete.self, Reset.self, Parked.self, Replay.self]
    )

    /// Where the gateway is and how to reach it.
    struct Connection: ParsableArguments {
        @Option(help: "The gateway's URL (http:// or https://).")
        var url = "http://127.0.0.1:8080"

        @Option(help: "A bearer token for a gateway with access control (default: $FLUXGATE_TOKEN).")
        var token: String?

        @Option(help: "With https://: trust only the CA certificates in this PEM file instead of the system trust store.")
        var caFile: String?

        func validate() throws {
            guard let parsed = URLComponents(string: url), let scheme = parsed.scheme?.lowercased(), scheme == "http" || scheme == "https",
                parsed.host?.isEmpty == false, parsed.user == nil
            else {
                throw ValidationError("--url must look like http://127.0.0.1:8080 (a token goes in --token), got \(url)")
            }
        }

        /// Sends one request; returns the parsed JSON body of a 2xx answer (nil for 204), or fails with the
        /// gateway's error message (exit status 1).
        func call(_ method: HTTPMethod, _ path: String, json: String? = nil) async throws -> Any? {
            let parsed = URLComponents(string: url)!
            let secure = parsed.scheme?.lowercased() == "https"
            let host = parsed.host ?? "127.0.0.1"
            let port = parsed.port ?? (secure ? 443 : 80)
            let base = parsed.percentEncodedPath.hasSuffix("/") ? String(parsed.percentEncodedPath.dropLast()) : parsed.percentEncodedPath
            var headers = [("Accept", "application/json"), ("User-Agent", "fluxgate-groups")]
            if let token = token ?? ProcessInfo.processInfo.environment["FLUXGATE_TOKEN"], !token.isEmpty {
                headers.append(("Authorization", "Bearer \(token)"))
            }
            if json != nil { headers.append(("Content-Type", "application/json")) }
            let response: HTTPResponse
            do {
                let connection = try await HTTPConnection.connect(host: host, port: port, tls: secure ? try ClientTLS(caFile: caFile) : nil)
                connection.responseTimeout = .seconds(30)
                do {
                    response = try await connection.request(method, base + path, headers: headers, body: json.map { ByteBuffer(string: $0) })
                } catch {
                    await connection.close()
                    throw error
                }
                await connection.close()
            } catch {
                Self.fail("no answer from \(url): \(RetryReporter.cause(of: error))")
            }
            let document = response.body.readableBytes > 0 ? try? JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) : nil
            guard (200..<300).contains(response.status.code) else {
                let message = (document as? [String: Any])?["message"] as? String ?? String(buffer: response.body)
                Self.fail("\(method.rawValue) \(path): \(response.status.code) \(response.status.reasonPhrase): \(message)")
            }
            return document
        }

        static func fail(_ message: String) -> Never {
            // `fluxgate groups` or `fluxgate sinks` (SinksCommand shares this connection).
            let command = CommandLine.arguments.dropFirst().first.flatMap { ["groups", "sinks"].contains($0) ? $0 : nil } ?? "groups"
            FileHandle.standardError.write(Data("fluxgate \(command): \(message)\n".utf8))
            Foundation.exit(1)
        }
    }

    /// Prints a JSON value, indented, keys sorted.
    static func printJSON(_ value: Any?) {
        guard let value, let data = try? JSONSerialization.data(withJSONObject: value, options: [.prettyPrinted, .sortedKeys]) else { return }
        print(String(decoding: data, as: UTF8.self))
    }

    /// A group name as the gateway accepts it (checked here so that a typo is said before any request).
    static func checkName(_ name: String) throws {
        guard (1...128).contains(name.utf8.count), name.utf8.allSatisfy({ byte in
            (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte) || byte == 0x2E || byte == 0x5F || byte == 0x2D
        }) else {
            throw ValidationError("a group name is 1 to 128 of A-Z a-z 0-9 . _ -; \(name.debugDescription) is not")
        }
    }

    /// `0`, `head` or a position.
    static func checkPosition(_ text: String, option: String) throws {
        guard text == "head" || (Int64(text).map { $0 >= 0 } ?? false) else {
            throw ValidationError("\(option) is 0, head or a position (an integer ≥ 0), not \(text.debugDescription)")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the groups: checkpoint, head, lag and parked events.")
        @OptionGroup var connection: Connection
        @Flag(help: "Print the gateway's JSON instead of a table.") var json = false

        func run() async throws {
            let answer = try await connection.call(.GET, "/groups")
            let groups = (answer as? [String: Any])?["groups"] as? [[String: Any]] ?? []
            if json { return GroupsCommand.printJSON(answer) }
            let rows = groups.map { group in
                [group["name"], group["checkpoint"], group["head"], group["lag"], group["parked"]].map { $0.map { "\($0)" } ?? "-" }
            }
            let header = ["NAME", "CHECKPOINT", "HEAD", "LAG", "PARKED"]
            let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
            for row in [header] + rows {
                print(row.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(separator: "  "))
            }
            if groups.isEmpty { print("(no groups; create one with: fluxgate groups create NAME)") }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one group: definition, checkpoint, lag, members, in-flight, parked.")
        @OptionGroup var connection: Connection
        @Argument(help: "The group's name.") var name: String
        func validate() throws { try GroupsCommand.checkName(name) }
        func run() async throws { GroupsCommand.printJSON(try await connection.call(.GET, "/groups/\(name)")) }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "create", abstract: "Create a group, or change an existing group's filter and policy (its checkpoint stays).",
            aliases: ["update"])
        @OptionGroup var connection: Connection
        @Argument(help: "The group's name: 1 to 128 of A-Z a-z 0-9 . _ -") var name: String
        @Option(name: .customLong("aggregate-name"), help: "Take only events of this aggregate name (repeatable).") var aggregateNames: [String] = []
        @Option(name: .customLong("event-type"), help: "Take only events of this type (repeatable).") var eventTypes: [String] = []
        @Option(name: .customLong("aggregate-id"), help: "Take only events of this aggregate id (repeatable).") var aggregateIDs: [String] = []
        @Option(help: "Where a new group starts: 0, head or a position (it takes the events after it).") var start: String?
        @Option(help: "Seconds a member may hold a leased event (1 to 3600).") var leaseTimeout: Double?
        @Option(help: "Failed deliveries before an event is parked (1 to 1000).") var maximumAttempts: Int?
        @Option(help: "Seconds before the second attempt, doubled for each further one (0 to 3600).") var backoff: Double?
        @Option(help: "The longest wait between attempts, in seconds (0 to 3600).") var maximumBackoff: Double?
        @Option(help: "While an event is parked, its aggregate's later events: hold (wait) or continue.") var parkedEvents: String?

        func validate() throws {
            try GroupsCommand.checkName(name)
            if let start { try GroupsCommand.checkPosition(start, option: "--start") }
            for (option, seconds, range) in [("--lease-timeout", leaseTimeout, 1.0...3600), ("--backoff", backoff, 0...3600), ("--maximum-backoff", maximumBackoff, 0...3600)] {
                if let seconds, !(seconds.isFinite && range.contains(seconds)) {
                    throw ValidationError("\(option) is \(Int(range.lowerBound)) to \(Int(range.upperBound)) seconds, not \(seconds)")
                }
            }
            if let maximumAttempts, !(1...1000).contains(maximumAttempts) { throw ValidationError("--maximum-attempts is 1 to 1000, not \(maximumAttempts)") }
            if let parkedEvents, !["hold", "continue"].contains(parkedEvents) { throw ValidationError("--parked-events is hold or continue, not \(parkedEvents)") }
        }

        func run() async throws {
            var body: [String: Any] = [:]
            if !(aggregateNames.isEmpty && eventTypes.isEmpty && aggregateIDs.isEmpty) {
                body["filter"] = ["aggregate_names": aggregateNames, "event_types": eventTypes, "aggregate_ids": aggregateIDs]
            }
            if let start { body["start"] = start }
            func milliseconds(_ seconds: Double) -> Int { Int((seconds * 1000).rounded()) }
            if let leaseTimeout { body["lease_timeout_ms"] = milliseconds(leaseTimeout) }
            if let backoff { body["backoff_ms"] = milliseconds(backoff) }
            if let maximumBackoff { body["maximum_backoff_ms"] = milliseconds(maximumBackoff) }
            if let maximumAttempts { body["maximum_attempts"] = maximumAttempts }
            if let parkedEvents { body["parked_events"] = parkedEvents }
            let json = String(decoding: try JSONSerialization.data(withJSONObject: body, options: [.sortedKeys]), as: UTF8.self)
            GroupsCommand.printJSON(try await connection.call(.PUT, "/groups/\(name)", json: json))
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a group with its checkpoint and parked events.")
        @OptionGroup var connection: Connection
        @Argument(help: "The group's name.") var name: String
        func validate() throws { try GroupsCommand.checkName(name) }
        func run() async throws {
            _ = try await connection.call(.DELETE, "/groups/\(name)")
            print("deleted group \(name)")
        }
    }

    struct Reset: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Move a group's checkpoint: back to rebuild a read model (--to 0), forward to skip (--to head).",
            discussion: "Leases end and everything after the position is delivered again; parked events after it are dropped.")
        @OptionGroup var connection: Connection
        @Argument(help: "The group's name.") var name: String
        @Option(help: "0, head or a position.") var to: String

        func validate() throws {
            try GroupsCommand.checkName(name)
            try GroupsCommand.checkPosition(to, option: "--to")
        }

        func run() async throws {
            let json = to == "head" ? #"{"position": "head"}"# : #"{"position": \#(to)}"#
            GroupsCommand.printJSON(try await connection.call(.POST, "/groups/\(name)/reset", json: json))
        }
    }

    struct Parked: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List a group's parked events: position, attempts, last reason.")
        @OptionGroup var connection: Connection
        @Argument(help: "The group's name.") var name: String
        func validate() throws { try GroupsCommand.checkName(name) }
        func run() async throws { GroupsCommand.printJSON(try await connection.call(.GET, "/groups/\(name)/parked")) }
    }

    struct Replay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Hand a parked event (or every parked event) to the group's members again.")
        @OptionGroup var connection: Connection
        @Argument(help: "The group's name.") var name: String
        @Option(help: "The parked event's position (default: every parked event).") var position: Int64?

        func validate() throws {
            try GroupsCommand.checkName(name)
            if let position, position <= 0 { throw ValidationError("--position is a position (an integer > 0), not \(position)") }
        }

        func run() async throws {
            let path = position.map { "/groups/\(name)/parked/\($0)/replay" } ?? "/groups/\(name)/replay"
            _ = try await connection.call(.POST, path)
            print(position.map { "replaying event \($0) of group \(name)" } ?? "replaying every parked event of group \(name)")
        }
    }
}
