import ArgumentParser
import FluxCore
import Logging
import FluxPostgres
import FluxSQLite
import Foundation
import ServiceLifecycle

/// Where the events live: `sqlite:PATH` (the default, one file, no server), `postgres://user:password@host:port/db`
/// (several gateway nodes on one database) or `memory`.
enum StoreLocation: ExpressibleByArgument, CustomStringConvertible, Sendable {
    case memory
    case sqlite(path: String)
    case postgres(PostgresLocation)

    static let defaultSQLitePath = "fluxgate-data/events.sqlite"

    init?(argument: String) {
        if argument == "memory" {
            self = .memory
        } else if argument.hasPrefix("sqlite:"), argument.count > "sqlite:".count {
            self = .sqlite(path: String(argument.dropFirst("sqlite:".count)))
        } else if argument.hasPrefix("postgres://") || argument.hasPrefix("postgresql://") {
            guard let location = try? PostgresLocation(url: argument) else { return nil }
            self = .postgres(location)
        } else {
            return nil
        }
    }

    var description: String {
        switch self {
        case .memory: return "memory"
        case .sqlite(let path): return "sqlite:\(path)"
        case .postgres(let location): return location.description
        }
    }

    static var allValueStrings: [String] { ["sqlite:PATH", "postgres://USER:PASSWORD@HOST:PORT/DATABASE", "memory"] }
}

/// An opened store and how to close it.
struct OpenedStore: Sendable {
    var store: any EventStore
    var close: @Sendable () async throws -> Void
}

extension StoreLocation {
    func open() async throws -> OpenedStore {
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
        case .postgres(let location):
            do {
                let store = try await PostgresEventStore.connect(to: location)
                return OpenedStore(store: store, close: { await store.close() })
            } catch {
                throw ValidationError("cannot open the PostgreSQL store at \(location): \(error)")
            }
        }
    }
}

/// The store of `serve`: opened before the gateway starts, or (PostgreSQL) by a service that runs its connection
/// pool and head watcher inside the gateway's service group.
struct ServedStore: Sendable {
    /// Runs the store's background work; first in the service group, so it is shut down last.
    var service: (any Service)?
    /// The store, once open.
    var store: @Sendable () async throws -> any EventStore
    /// Closes what `service` does not.
    var close: @Sendable () async throws -> Void
}

extension StoreLocation {
    /// Opens the store for `serve`: memory and SQLite at once, PostgreSQL inside the service group.
    func openForServing(logger: Logger) async throws -> ServedStore {
        switch self {
        case .memory, .sqlite:
            let opened = try await open()
            return ServedStore(service: nil, store: { opened.store }, close: opened.close)
        case .postgres(let location):
            let service = PostgresEventStore.Service(location: location, logger: logger)
            return ServedStore(service: service, store: { try await service.store() }, close: {})
        }
    }
}
