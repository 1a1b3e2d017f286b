import ArgumentParser
import Foundation

/// `fluxgate`: serve an event store's feed, run the demo, and the conformance testees.
@main
struct Fluxgate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fluxgate",
        abstract: "An event-sourcing toolkit and event-feed gateway: a JSON feed and append API over an event store.",
        discussion: """
            Start with `fluxgate demo` (a bank example served and consumed end to end; `fluxgate demo --serve` keeps it running to explore), then `fluxgate serve` to run a gateway on the embedded SQLite store (fluxgate-data/events.sqlite).
            """,
        subcommands: [ServeCommand.self, DemoCommand.self, TailCommand.self, ImportCommand.self, EchoServerCommand.self, EchoClientCommand.self, AppendLoopCommand.self]
    )

    /// Parses and runs a command; `serve --config FILE` is first expanded into the file's options.
    static func main() async {
        do {
            let arguments = try ServeConfigFile.expand(Array(CommandLine.arguments.dropFirst()))
            var command = try parseAsRoot(arguments)
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let failure as ServeConfigFile.Failure {
            FileHandle.standardError.write(Data("Error: \(failure.description)\n".utf8))
            Foundation.exit(64)
        } catch {
            exit(withError: error)
        }
    }
}
