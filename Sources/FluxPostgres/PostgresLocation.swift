import FluxCore
import Foundation
import NIOSSL
import PostgresNIO

/// Where a PostgreSQL database is, parsed from a `postgres://user:password@host:port/database` URL.
///
/// Query items: `sslmode=disable` (the default), `prefer` or `require` (TLS with the system's trust store).
/// A host starting with `/` (`postgres://user@%2Fvar%2Frun%2Fpostgresql/db`) is a Unix-domain socket directory.
public struct PostgresLocation: Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var username: String
    public var password: String?
    public var database: String
    public var tlsMode: TLSMode

    /// How the connection uses TLS.
    public enum TLSMode: String, Sendable {
        case disable, prefer, require
    }

    public init(host: String, port: Int = 5432, username: String, password: String? = nil, database: String, tlsMode: TLSMode = .disable) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
        self.tlsMode = tlsMode
    }

    /// Parses a `postgres://` or `postgresql://` URL.
    /// - Throws: `StoreError.storeUnavailable` naming what is wrong with the URL.
    public init(url: String) throws {
        func bad(_ why: String) -> StoreError {
            StoreError(.storeUnavailable, "bad PostgreSQL URL (\(why)); expected postgres://user:password@host:port/database")
        }
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased() else {
            throw bad("not a URL")
        }
        guard scheme == "postgres" || scheme == "postgresql" else { throw bad("the scheme is \(scheme), not postgres") }
        guard let host = components.host?.removingPercentEncoding, !host.isEmpty else { throw bad("no host") }
        guard let user = components.user?.removingPercentEncoding, !user.isEmpty else { throw bad("no user name") }
        let database = String(components.path.drop(while: { $0 == "/" })).removingPercentEncoding ?? ""
        guard !database.isEmpty else { throw bad("no database name after the host") }
        var tlsMode = TLSMode.disable
        for item in components.queryItems ?? [] {
            switch item.name {
            case "sslmode":
                guard let mode = item.value.flatMap(TLSMode.init(rawValue:)) else {
                    throw bad("sslmode must be disable, prefer or require")
                }
                tlsMode = mode
            default:
                throw bad("unknown parameter \(item.name)")
            }
        }
        self.init(
            host: host, port: components.port ?? 5432, username: user, password: components.password?.removingPercentEncoding,
            database: database, tlsMode: tlsMode
        )
    }

    /// The URL without its password, for logs and messages.
    public var description: String {
        "postgres://\(username)@\(host.hasPrefix("/") ? host.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? host : host):\(port)/\(database)"
    }

    /// The same server and user, another database.
    public func database(_ name: String) -> PostgresLocation {
        var copy = self
        copy.database = name
        return copy
    }

    /// The postgres-nio client configuration for this location.
    func clientConfiguration(maximumConnections: Int, timeout: Duration) throws -> PostgresClient.Configuration {
        var configuration: PostgresClient.Configuration
        if host.hasPrefix("/") {
            configuration = PostgresClient.Configuration(
                unixSocketPath: host + "/.s.PGSQL.\(port)", username: username, password: password, database: database
            )
        } else {
            let tls: PostgresClient.Configuration.TLS
            switch tlsMode {
            case .disable: tls = .disable
            case .prefer: tls = .prefer(.makeClientConfiguration())
            case .require: tls = .require(.makeClientConfiguration())
            }
            configuration = PostgresClient.Configuration(
                host: host, port: port, username: username, password: password, database: database, tls: tls
            )
        }
        configuration.options.maximumConnections = maximumConnections
        configuration.options.connectTimeout = timeout
        return configuration
    }

    /// The postgres-nio configuration of a single connection (the writers' own connections).
    func connectionConfiguration(timeout: Duration) throws -> PostgresConnection.Configuration {
        var configuration: PostgresConnection.Configuration
        if host.hasPrefix("/") {
            configuration = PostgresConnection.Configuration(
                unixSocketPath: host + "/.s.PGSQL.\(port)", username: username, password: password, database: database
            )
        } else {
            let tls: PostgresConnection.Configuration.TLS
            switch tlsMode {
            case .disable: tls = .disable
            case .prefer: tls = .prefer(try NIOSSLContext(configuration: .makeClientConfiguration()))
            case .require: tls = .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
            }
            configuration = PostgresConnection.Configuration(
                host: host, port: port, username: username, password: password, database: database, tls: tls
            )
        }
        configuration.options.connectTimeout = .milliseconds(Int64(timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000))
        return configuration
    }
}
