import ArgumentParser
import FluxCore
import FluxGateway
import Logging
import ServiceLifecycle

/// `fluxgate serve`: runs the gateway until SIGINT or SIGTERM.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the JSON feed and the append API over an event store.",
        discussion: """
            Examples:
              fluxgate serve                                  # sqlite:fluxgate-data/events.sqlite on 127.0.0.1:8080
              fluxgate serve --port 9000 --store memory
              fluxgate serve --host 0.0.0.0 --public-url https://feed.example.com
              fluxgate serve --tls-cert server.pem --tls-key server-key.pem   # https:// and wss://
            Stop with Ctrl-C (SIGINT) or SIGTERM: in-flight appends finish, then the server exits.
            """
    )

    @Option(help: "The address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "The port to listen on (0 picks a free one).")
    var port = 8080

    @Option(help: "The event store: sqlite:PATH or memory.")
    var store = StoreLocation.sqlite(path: StoreLocation.defaultSQLitePath)

    @Option(help: "The base URL written into each event's url (default: from the request's Host or X-Forwarded-* headers).")
    var publicURL: String?

    @Option(help: "The largest request body accepted, in bytes.")
    var maxBodySize = 1 << 20

    @Option(
        name: .customLong("allow-origin"),
        help: "A browser origin (https://app.example.com) whose pages may open the push channel; repeat it, or * for any. The gateway's own origin is always allowed."
    )
    var allowedOrigins: [String] = []

    @Option(help: "Open connections accepted in total; more get 503 with Retry-After.")
    var maxConnections = 16_000

    @Option(help: "Open connections accepted from one client address (default: no limit per address).")
    var maxConnectionsPerAddress: Int?

    @Option(help: "Serve https:// and wss:// with this certificate chain (PEM: the server's certificate, then intermediates); needs --tls-key.")
    var tlsCert: String?

    @Option(help: "The private key of --tls-cert (PEM, unencrypted).")
    var tlsKey: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0…65535, got \(port)") }
        guard maxBodySize > 0 else { throw ValidationError("--max-body-size must be positive") }
        guard maxConnections > 0 else { throw ValidationError("--max-connections must be positive") }
        if let maxConnectionsPerAddress, maxConnectionsPerAddress <= 0 {
            throw ValidationError("--max-connections-per-address must be positive")
        }
        for origin in allowedOrigins where origin != "*" && !(origin.hasPrefix("http://") || origin.hasPrefix("https://")) {
            throw ValidationError("--allow-origin takes an origin such as https://app.example.com, or *; got \(origin)")
        }
        if let publicURL, !(publicURL.hasPrefix("http://") || publicURL.hasPrefix("https://")) {
            throw ValidationError("--public-url must start with http:// or https://, got \(publicURL)")
        }
        if (tlsCert == nil) != (tlsKey == nil) {
            throw ValidationError("--tls-cert and --tls-key go together: pass both (the certificate chain and its private key, PEM) to serve TLS, or neither")
        }
    }

    func run() async throws {
        var logger = Logger(label: "fluxgate")
        logger.logLevel = logLevel
        // Load the certificate before opening the store: a bad file fails fast, with the file named.
        let tls = try tlsCert.map { try GatewayTLS(certificateChainFile: $0, privateKeyFile: tlsKey ?? "") }
        let opened = try await store.open()
        logger.info("store opened", metadata: ["store": "\(store)", "epoch": "\(opened.store.epoch)"])
        var configuration = GatewayConfiguration(
            host: host, port: port, publicURL: publicURL, maxRequestBodySize: maxBodySize, allowedOrigins: Set(allowedOrigins),
            maxConnections: maxConnections, maxConnectionsPerAddress: maxConnectionsPerAddress, logger: logger
        )
        configuration.tls = tls
        let server = GatewayServer(store: opened.store, configuration: configuration)
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [.init(service: server)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        do {
            try await group.run()
        } catch {
            try? await opened.close()
            throw error
        }
        try await opened.close()
        logger.info("store closed")
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
