import ArgumentParser
import FluxCore
import FluxSQLite
import Foundation

/// Where the events live: `sqlite:PATH` (the default, one file, no server) or `memory`.
enum StoreLocation: ExpressibleByArgument, CustomStringConvertible, Sendable {
    case memory
    case sqlite(path: String)

    static let defaultSQLitePath = "fluxgate-data/events.sqlite"

    init?(argument: String) {
        if argument == "memory" {
            self = .memory
        } else if argument.hasPrefix("sqlite:"), argument.count > "sqlite:".count {
            self = .sqlite(path: String(argument.dropFirst("sqlite:".count)))
        } else {
            return nil
        }
    }

    var description: String {
        switch self {
        case .memory: return "memory"
        case .sqlite(let path): return "sqlite:\(path)"
        }
    }

    static var allValueStrings: [String] { ["sqlite:PATH", "memory"] }
}

/// An opened store and how to close it.
struct OpenedStore: Sendable {
    var store: any EventStore
    var close: @Sendable () async throws -> Void
}

extension StoreLocation {
    func open() throws -> OpenedStore {
        switch self {
        case .memory:
            return OpenedStore(store: InMemoryEventStore(), close: {})
        case .sqlite(let path):
            do {
                let store = try SQLiteEventStore(path: path)
                return OpenedStore(store: store, close: { try await store.close() })
            } catch {
                throw ValidationError("cannot open the SQLite store at \(path): \(error)")
            }
        }
    }
}
