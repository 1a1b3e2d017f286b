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
        version: FluxgateVersion.current,
        subcommands: [ServeCommand.self, DemoCommand.self, TailCommand.self, ImportCommand.self, GroupsCommand.self, SinksCommand.self, HealthCommand.self, EchoServerCommand.self, EchoClientCommand.self, AppendLoopCommand.self]
    )

    /// Parses and runs a command; `serve --config FILE` is first expanded into the file's options.
    static func main() async {
        do {
            let fromEnvironment = try ServeEnvironment.expand(Array(CommandLine.arguments.dropFirst()), environment: ProcessInfo.processInfo.environment)
            let arguments = try ServeConfigFile.expand(fromEnvironment.arguments)
            let command: ParsableCommand
            do {
                command = try parseAsRoot(arguments)
            } catch where !fromEnvironment.variables.isEmpty {
                // A bad value may have come from a variable the user forgot about: name them.
                FileHandle.standardError.write(Data("fluxgate serve: options were also taken from \(fromEnvironment.variables.joined(separator: ", "))\n".utf8))
                throw error
            }
            var runnable = command
            if var asyncCommand = runnable as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try runnable.run()
            }
        } catch let failure as ServeConfigFile.Failure {
            FileHandle.standardError.write(Data("Error: \(failure.description)\n".utf8))
            Foundation.exit(64)
        } catch let failure as ServeEnvironment.Failure {
            FileHandle.standardError.write(Data("Error: \(failure.description)\n".utf8))
            Foundation.exit(64)
        } catch {
            exit(withError: error)
        }
    }
}
