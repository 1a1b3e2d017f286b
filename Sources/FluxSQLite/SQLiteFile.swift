import Foundation
import FluxCore
import GRDB

/// Opens the SQLite files of the stores: parent directories, WAL pool, busy timeout, durability.
enum SQLiteFile {
    /// Opens (creating it and its parent directories if needed) a WAL-mode pool on `path`.
    ///
    /// GRDB sets `synchronous = NORMAL` when it enables WAL on the writer, so the requested durability is set
    /// on the writer connection afterwards (readers never write, their setting does not matter).
    static func openPool(path: String, durability: SQLiteDurability, what: String) throws -> DatabasePool {
        let url = URL(fileURLWithPath: path)
        let directory = url.deletingLastPathComponent()
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            throw StoreError(
                .storeUnavailable,
                "cannot create the directory \(directory.path) for the \(what) (\(error.localizedDescription)); check the path and its permissions"
            )
        }
        var configuration = Configuration()
        configuration.label = "fluxgate.\(what.replacingOccurrences(of: " ", with: "-"))"
        // Another process holding the write lock (a second fluxgate on the same file) makes writers wait, not fail.
        configuration.busyMode = .timeout(10)
        do {
            let pool = try DatabasePool(path: path, configuration: configuration)
            try pool.writeWithoutTransaction { db in
                try db.execute(sql: "PRAGMA synchronous = \(durability.pragmaValue)")
            }
            return pool
        } catch {
            throw StoreError(
                .storeUnavailable,
                "cannot open the \(what) at \(path) (\(describe(error))); check that the file is an SQLite database and that its directory is writable"
            )
        }
    }

    /// A read-only connection to the database at `path` (opened by `openPool` before), for point reads on the
    /// caller's thread.
    static func openLookupConnection(path: String, what: String) throws -> DatabaseQueue {
        var configuration = Configuration()
        configuration.label = "fluxgate.\(what.replacingOccurrences(of: " ", with: "-")).lookups"
        configuration.readonly = true
        // A WAL reader waits only in rare moments (another connection recovering the WAL); it runs on the caller's
        // thread, an event loop of the gateway, which must not stall for long: fail the read (503, retried) instead.
        configuration.busyMode = .timeout(0.2)
        do {
            return try DatabaseQueue(path: path, configuration: configuration)
        } catch {
            throw StoreError(.storeUnavailable, "cannot open a read-only connection to the \(what) at \(path) (\(describe(error))); check the file's permissions")
        }
    }

    /// A short description of a database error for messages: SQLite's code and message, never SQL arguments.
    static func describe(_ error: any Error) -> String {
        if let error = error as? DatabaseError {
            return "SQLite error \(error.extendedResultCode.rawValue): \(error.message ?? "no message")"
        }
        if let error = error as? StoreError { return error.message }
        return String(describing: error)
    }
}
