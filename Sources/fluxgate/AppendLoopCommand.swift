import ArgumentParser
import FluxCore
import Foundation

/// `fluxgate append-loop`: appends 1-event appends forever from several concurrent writers and prints every
/// acknowledged append, so that a crash test can kill it with SIGKILL and check that every acknowledged event
/// survived.
struct AppendLoopCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "append-loop",
        abstract: "Appends events in a loop, printing each acknowledged append (used by crash tests).",
        discussion: """
            Prints one line `ack <position> <event_id>` per acknowledged append, written to stdout at once.
            Runs until killed.
            """,
        shouldDisplay: false
    )

    @Option(help: "The SQLite event store file (created if missing); or use --store.")
    var path: String?

    @Option(help: "The event store: sqlite:PATH or postgres://USER:PASSWORD@HOST:PORT/DATABASE.")
    var store: StoreLocation?

    @Option(help: "How many concurrent writers append.")
    var writers: Int = 4

    func validate() throws {
        guard writers > 0 else { throw ValidationError("--writers must be at least 1") }
        guard (path == nil) != (store == nil) else { throw ValidationError("give exactly one of --path and --store") }
    }

    func run() async throws {
        let store = try await (self.store ?? .sqlite(path: path ?? "")).open().store
        let run = UUID().uuidString.lowercased().prefix(8)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for writer in 0..<writers {
                group.addTask {
                    var index = 0
                    while true {
                        let eventID = "\(run)-w\(writer)-\(index)"
                        let payload = EventPayload(trustedJSON: Array(#"{"writer":\#(writer),"index":\#(index)}"#.utf8))
                        let result = try await store.append(
                            AppendRequest(
                                aggregateID: "loop-\(run)-\(writer)", aggregateName: "Loop", expectedVersion: .any,
                                events: [NewEvent(eventID: eventID, eventType: "loop.Appended", payload: payload)]
                            )
                        )
                        // One write(2) per line: unbuffered, so a line printed is a line the test can read after SIGKILL.
                        FileHandle.standardOutput.write(Data("ack \(result.firstPosition) \(eventID)\n".utf8))
                        index += 1
                    }
                }
            }
            try await group.waitForAll()
        }
    }
}
