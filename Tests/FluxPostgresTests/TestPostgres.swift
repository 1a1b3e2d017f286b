import FluxCore
import FluxPostgres
import FluxTesting
import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// The PostgreSQL server of the tests: `FLUXGATE_TEST_POSTGRES_URL` when set, otherwise a throwaway server that
/// `scripts/postgres.sh start` runs on loopback (and leaves running for the next test run; `scripts/postgres.sh stop`
/// stops it). Each test gets its own database.
actor TestPostgres {
    static let shared = TestPostgres()

    static let script = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("scripts/postgres.sh").path

    private var server: Task<PostgresLocation, any Error>?

    /// The server (its `postgres` database).
    func location() async throws -> PostgresLocation {
        if let server { return try await server.value }
        let task = Task<PostgresLocation, any Error> {
            if let url = ProcessInfo.processInfo.environment["FLUXGATE_TEST_POSTGRES_URL"] {
                return try PostgresLocation(url: url)
            }
            let server = try await Self.start()
            try await Self.dropOldTestDatabases(on: server)
            return server
        }
        server = task
        return try await task.value
    }

    /// Starts a server with `scripts/postgres.sh` (in `directory` on `port` when given) and returns its location.
    static func start(directory: String? = nil, port: Int? = nil) async throws -> PostgresLocation {
        let arguments = ["bash", script, "start"] + (directory.map { [$0] } ?? []) + (port.map { [String($0)] } ?? [])
        let process = try await ChildProcess.run(URL(fileURLWithPath: "/usr/bin/env"), arguments, timeout: .seconds(120))
        guard process.status == 0, let url = process.outputLines.last else {
            throw TestSetupError("could not start PostgreSQL with scripts/postgres.sh (\(process.errorOutput)); run scripts/setup.sh, or set FLUXGATE_TEST_POSTGRES_URL")
        }
        return try PostgresLocation(url: url)
    }

    /// Stops a server started with `start(directory:port:)`.
    static func stop(directory: String) async throws {
        _ = try await ChildProcess.run(URL(fileURLWithPath: "/usr/bin/env"), ["bash", script, "stop", directory], timeout: .seconds(60))
    }

    /// Drops the databases earlier test runs left on the throwaway server (each test makes its own), so that they do
    /// not pile up (a server restarted after a crash syncs every file of every database before it accepts connections).
    static func dropOldTestDatabases(on server: PostgresLocation) async throws {
        let url = "postgres://\(server.username)@\(server.host):\(server.port)/\(server.database)"
        let sql = #"SELECT format('DROP DATABASE IF EXISTS %I', datname) FROM pg_database WHERE datname LIKE 'fluxgate\_test\_%' \gexec"#
        _ = try await ChildProcess.run(
            URL(fileURLWithPath: "/usr/bin/env"), ["bash", "-c", "echo \"$1\" | psql -X -q \"$2\" >/dev/null", "drop", sql, url], timeout: .seconds(120))
    }

    /// A new, empty database on the server.
    func freshDatabase() async throws -> PostgresLocation {
        try await Self.createDatabase(on: try await location())
    }

    /// Creates a database with a random name on `server`.
    static func createDatabase(on server: PostgresLocation) async throws -> PostgresLocation {
        let name = "fluxgate_test_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        try await psql(server, "CREATE DATABASE \(name)")
        return server.database(name)
    }

    /// Runs one SQL command with psql.
    static func psql(_ location: PostgresLocation, _ sql: String) async throws {
        _ = try await psqlMessages(location, sql)
    }

    /// Runs SQL (one or more commands, in one session) with psql and returns what the server said besides the
    /// results: notices and, after `SET client_min_messages = log`, log messages.
    static func psqlMessages(_ location: PostgresLocation, _ sql: String) async throws -> String {
        try await runPsql(location, sql).errorOutput
    }

    /// Runs SQL with psql and returns its results: unaligned, without headers, one line per row.
    static func psqlOutput(_ location: PostgresLocation, _ sql: String) async throws -> String {
        try await runPsql(location, sql, options: ["-A", "-t"]).outputLines.joined(separator: "\n")
    }

    private static func runPsql(_ location: PostgresLocation, _ sql: String, options: [String] = []) async throws -> ChildProcess.Outcome {
        let url = "postgres://\(location.username)@\(location.host):\(location.port)/\(location.database)"
        let process = try await ChildProcess.run(
            URL(fileURLWithPath: "/usr/bin/env"), ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1"] + options + [url, "-c", sql], timeout: .seconds(60))
        guard process.status == 0 else {
            throw TestSetupError("psql failed on \(sql): \(process.errorOutput)")
        }
        return process
    }
}

struct TestSetupError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A logger that only reports errors (the stores log their opening at info level).
let quietLogger: Logger = {
    var logger = Logger(label: "fluxgate.postgres.tests")
    logger.logLevel = .error
    return logger
}()

extension PostgresEventStore {
    /// A store on `location` with the tests' quiet logger and, unless `options` say otherwise, a 60 s operation
    /// timeout: the whole suite runs in parallel beside other jobs, and a connection may take seconds then.
    static func open(_ location: PostgresLocation, options: Options? = nil) async throws -> PostgresEventStore {
        try await connect(to: location, options: options ?? .forTests, logger: quietLogger)
    }
}

extension PostgresEventStore.Options {
    /// The defaults with a generous operation timeout (``TestPostgres/operationTimeout``).
    static var forTests: Self {
        var options = Self()
        options.operationTimeout = TestPostgres.operationTimeout
        return options
    }
}

extension TestPostgres {
    /// How long a test's store waits for PostgreSQL: the whole suite runs in parallel beside other jobs (a cold
    /// build, say), and a connection and its migrations may then take well over the default 10 s.
    static let operationTimeout = Duration.seconds(60)
}

/// A TCP port on loopback that is free now (the kernel picks it), for a second PostgreSQL server.
func freeLoopbackPort() -> Int {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard descriptor >= 0 else { return Int.random(in: 40_000...49_999) }
    defer { close(descriptor) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) == 0 && getsockname(descriptor, $0, &length) == 0 }
    }
    guard bound else { return Int.random(in: 40_000...49_999) }
    return Int(UInt16(bigEndian: address.sin_port))
}
